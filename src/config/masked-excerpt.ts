// A short excerpt of a database setting around a place in it, its passwords masked: a problem may quote it.

/** The ranges of `text` that hold a password: a URL's userinfo after its user, a password= keyword's value. */
function passwordRanges(text: string): [number, number][] {
  const ranges: [number, number][] = []
  // Greedy to the last '@' before the string's end (a '"' then ',', '}' or ']'): a password may
  // hold '@', '/', ':' or a '"' the JSON breaks at. Masking too much is safe; too little is not.
  for (const m of text.matchAll(/:\/\/[^:/?#\s@"]*:((?:[^\s"]|"(?![,}\]]))*)@/g)) {
    const start = m.index + m[0].length - m[1]!.length - 1
    ranges.push([start, start + m[1]!.length])
  }
  for (const m of text.matchAll(/password=([^&\s",}]*)/gi)) {
    const start = m.index + m[0].length - m[1]!.length
    ranges.push([start, start + m[1]!.length])
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
