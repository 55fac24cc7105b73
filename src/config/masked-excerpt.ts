// A short excerpt of a database setting around a place in it, its passwords masked: a problem may quote it.

/**
 * Where a password starting at `start` may end: before the last `term` on its line, else (a raw line
 * break inside it, where the JSON breaks) the last in the text; null when none follows.
 */
function lastOf(text: string, start: number, term: string): number | null {
  const rest = text.slice(start).search(/[\r\n]/)
  const onLine = text.lastIndexOf(term, (rest < 0 ? text.length : start + rest) - 1)
  if (onLine >= start) return onLine
  const anywhere = text.lastIndexOf(term)
  return anywhere >= start ? anywhere : null
}

/**
 * The ranges of `text` that may hold a password: a URL's userinfo after its user, up to the last
 * '@' after it; a password= (or "password":) value, up to the last '"' after it, else the text's
 * end. Greedy, never up to the first end: a password may hold '@', '&', a raw '"' and ',', '}' or
 * ']' (where malformed JSON breaks) or a line break. Masking too much is safe; too little is not.
 */
function passwordRanges(text: string): [number, number][] {
  const ranges: [number, number][] = []
  for (const m of text.matchAll(/:\/\/[^:/?#\s@"]*:/g)) {
    const start = m.index + m[0].length
    // No '@' after it: the ':' is a port's.
    const end = lastOf(text, start, '@')
    if (end !== null) ranges.push([start, end])
  }
  for (const m of text.matchAll(/password(?:\s*=\s*|"\s*:\s*"?)/gi)) {
    const start = m.index + m[0].length
    ranges.push([start, lastOf(text, start, '"') ?? text.length])
  }
  return ranges
}

/** Up to `reach` characters either side of `offset` (marked there), on one line, each password shown as ***. */
export function maskedExcerpt(text: string, offset: number, mark: string, reach = 30): string {
  const from = Math.max(0, offset - reach)
  const to = Math.min(text.length, offset + reach)
  const ranges = passwordRanges(text)
  let out = ''
  for (let i = from; i < to; i++) {
    const r = ranges.find(([s, e]) => i >= s && i < e)
    if (i === offset) out += mark
    if (r) {
      out += `***${offset > i && offset < r[1] ? mark : ''}`
      i = r[1] - 1
    } else {
      out += text[i] === '\n' || text[i] === '\r' ? ' ' : text[i]
    }
  }
  if (offset >= text.length) out += mark
  return `${from > 0 ? '…' : ''}${out}${to < text.length ? '…' : ''}`
}
