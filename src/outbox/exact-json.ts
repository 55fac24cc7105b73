// JSON text parsed with each number kept as Postgres wrote it where a JS number would change it (12.50, 2^53 + 1).

/**
 * A JSON number whose text a JS number would not give back: `numeric(10,2)`'s 12.50 (12.5), a
 * bigint past 2^53 (its last digits). Printed (String, a template's placeholder) and serialized
 * (JSON.stringify, as JSON.rawJSON) as that text; `value` is the nearest JS number.
 * Invariant: `text` is a JSON number's text.
 */
export class ExactNumber {
  readonly text: string
  readonly value: number
  constructor(text: string) {
    this.text = text
    this.value = Number(text)
  }
  toString(): string {
    return this.text
  }
  valueOf(): number {
    return this.value
  }
  // `'' + n` (how Mustache joins an unescaped value) asks for no hint: the text, as String(n).
  [Symbol.toPrimitive](hint: string): string | number {
    return hint === 'number' ? this.value : this.text
  }
  toJSON(): unknown {
    return rawJSON(this.text)
  }
}

// JSON.rawJSON (ES2025, in Bun): JSON.stringify writes its text as it is. TypeScript's lib lacks it.
const rawJSON = (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON

// A JSON string (skipped whole, so digits inside one are never taken for a number), or a number.
const TOKEN = /"[^"\\]*(?:\\.[^"\\]*)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g
// Postgres refuses U+0000 in jsonb and in text, so no string of its JSON starts with it: a marker
// "\u0000" + number text cannot be mistaken for a value.
const MARK = '\u0000'

/**
 * Parses JSON text as JSON.parse does, except that a number whose text String(Number(text)) would
 * not give back becomes an ExactNumber. `null` when the text holds no such number: JSON.parse's
 * result is then exact already, and the caller keeps it (one regular-expression pass, no second parse).
 */
export function parseExactNumbers(text: string): unknown | null {
  let inexact = false
  const marked = text.replace(TOKEN, (token) => {
    if (token.charCodeAt(0) === 34 || String(Number(token)) === token) return token
    inexact = true
    return `"\\u0000${token}"`
  })
  if (!inexact) return null
  // Marked strings are replaced by a walk with its own stack, not by a reviver: JSON.parse's reviver
  // recurses per level, and jsonb nests about 10,000 deep (a source row's json column), which
  // exhausted the stack at about 5,000 and failed a claim whose rows were already leased.
  const root = JSON.parse(marked) as unknown
  const exact = (v: unknown) =>
    typeof v === 'string' && v.startsWith(MARK) ? new ExactNumber(v.slice(1)) : v
  const containers: Record<string, unknown>[] = []
  if (root !== null && typeof root === 'object') containers.push(root as Record<string, unknown>)
  for (let c = containers.pop(); c !== undefined; c = containers.pop()) {
    for (const key of Object.keys(c)) {
      const v = c[key]
      if (v !== null && typeof v === 'object') containers.push(v as Record<string, unknown>)
      else if (typeof v === 'string') c[key] = exact(v)
    }
  }
  return exact(root)
}

/** JSON.parse, with a number JSON.parse would change kept as an ExactNumber (parseExactNumbers). */
export function parseJsonExactly(text: string): unknown {
  return parseExactNumbers(text) ?? JSON.parse(text)
}

/** Whether a parsed JSON value holds a number anywhere: only then can parseExactNumbers change it. */
export function holdsNumber(v: unknown): boolean {
  // Its own stack, not recursion: a value may nest as deep as jsonb takes (see parseExactNumbers).
  const pending: unknown[] = [v]
  while (pending.length > 0) {
    const x = pending.pop()
    if (typeof x === 'number') return true
    if (x !== null && typeof x === 'object') for (const y of Object.values(x)) pending.push(y)
  }
  return false
}
