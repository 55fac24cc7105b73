// The path of the first key a JSON text names twice in one object: JSON.parse keeps the later value and drops the earlier without a word.

type Frame =
  | { object: true; keys: Set<string>; expectKey: boolean; key: string }
  | { object: false; index: number }

const QUOTE = 34
const BACKSLASH = 92

/**
 * "message.to" for {"message":{"to":"a@b.c","to":"d@e.f"}}; null when every object names each key
 * once, or when the text is no JSON (JSON.parse says so). Keys compare as decoded ("n\u0061me" is
 * "name"). Strings are skipped by indexOf, so a large text or base64 value costs one native search:
 * the walk is as long as the body's structure, not its size.
 */
export function duplicateKeyPath(text: string): string | null {
  const stack: Frame[] = []
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) {
      let end = text.indexOf('"', i + 1)
      // A quote after an odd run of backslashes is escaped: look past it.
      while (end > 0 && escaped(text, end)) end = text.indexOf('"', end + 1)
      if (end < 0) return null
      const top = stack.at(-1)
      if (top?.object && top.expectKey) {
        const raw = text.slice(i + 1, end)
        let key: string
        try {
          key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw
        } catch {
          return null
        }
        top.key = key
        top.expectKey = false
        if (top.keys.has(key)) return pathOf(stack)
        top.keys.add(key)
      }
      i = end
    } else if (c === 123 /* { */) {
      stack.push({ object: true, keys: new Set(), expectKey: true, key: '' })
    } else if (c === 91 /* [ */) {
      stack.push({ object: false, index: 0 })
    } else if (c === 125 /* } */ || c === 93 /* ] */) {
      stack.pop()
    } else if (c === 44 /* , */) {
      const top = stack.at(-1)
      if (top?.object) top.expectKey = true
      else if (top) top.index++
    }
  }
  return null
}

function escaped(text: string, quote: number): boolean {
  let n = 0
  for (let j = quote - 1; j >= 0 && text.charCodeAt(j) === BACKSLASH; j--) n++
  return n % 2 === 1
}

// Each frame's key or index down to the repeated key, the innermost.
const pathOf = (stack: Frame[]) => stack.map((f) => (f.object ? f.key : String(f.index))).join('.')
