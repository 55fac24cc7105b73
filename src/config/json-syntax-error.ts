// Where a JSON text breaks and what JSON wants there (Bun's JSON.parse names neither line nor column).

export interface JsonSyntaxError {
  /** In UTF-16 units, as the text is indexed. */
  offset: number
  line: number
  /** In code points from 1, as an editor counts the line's characters. */
  column: number
  expected: string
}

class Stop {
  constructor(readonly expected: string) {}
}

const NUMBER = /-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/y

/** A text whose nesting the scan could not follow: each level is a call, and thousands of [ outrun the stack. */
export const TOO_DEEP = 'too deep'

/** What follows "is not valid JSON" for a scan's answer: where it breaks and what JSON wants there. */
export const whereJsonBreaks = (at: JsonSyntaxError | typeof TOO_DEEP): string =>
  at === TOO_DEEP
    ? ' (nested too deeply to say where it breaks)'
    : ` at line ${at.line}, column ${at.column}: expected ${at.expected}`

/**
 * The first place `text` stops being JSON (RFC 8259), TOO_DEEP when it nests past what the scan can
 * follow (the runtime's parser gives up on such a text too), or null when it is JSON.
 */
export function jsonSyntaxError(text: string): JsonSyntaxError | typeof TOO_DEEP | null {
  let i = 0
  const fail = (expected: string): never => {
    throw new Stop(expected)
  }
  const space = () => {
    while (i < text.length && ' \t\n\r'.includes(text[i]!)) i++
  }
  const string = () => {
    i++
    for (;;) {
      const c = text[i]
      if (c === undefined) fail('a closing double quote')
      if (c === '"') {
        i++
        return
      }
      if (c === '\\') {
        i++
        if (text[i] === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) i += 4
        else if (!'"\\/bfnrt'.includes(text[i] ?? 'x'))
          fail('an escape: \\" \\\\ \\/ \\b \\f \\n \\r \\t or \\uXXXX')
      } else if (c! < ' ') {
        fail('no raw control character inside a string (a line break is written \\n)')
      }
      i++
    }
  }
  const value = (): void => {
    space()
    const c = text[i]
    if (c === '{') {
      i++
      space()
      if (text[i] === '}') return void i++
      for (;;) {
        space()
        if (text[i] !== '"') fail('a property name in double quotes')
        string()
        space()
        if (text[i] !== ':') fail("':' after a property name")
        i++
        value()
        space()
        if (text[i] === '}') return void i++
        if (text[i] !== ',') fail("',' or '}'")
        i++
      }
    }
    if (c === '[') {
      i++
      space()
      if (text[i] === ']') return void i++
      for (;;) {
        value()
        space()
        if (text[i] === ']') return void i++
        if (text[i] !== ',') fail("',' or ']'")
        i++
      }
    }
    if (c === '"') {
      string()
      return
    }
    if (c === ']' || c === '}') fail('a value (JSON takes no comma before a closing bracket)')
    for (const literal of ['true', 'false', 'null']) {
      if (text.startsWith(literal, i)) {
        i += literal.length
        return
      }
    }
    NUMBER.lastIndex = i
    const n = NUMBER.exec(text)
    if (n) {
      i += n[0].length
      return
    }
    fail('a value: an object, an array, a string in double quotes, a number, true, false or null')
  }
  try {
    value()
    space()
    if (i < text.length) fail('nothing after the value')
    return null
  } catch (e) {
    if (e instanceof RangeError) return TOO_DEEP
    if (!(e instanceof Stop)) throw e
    const before = text.slice(0, i)
    const line = before.split('\n').length
    // Counted in code points, as an editor shows the line: a character outside the basic plane
    // (an emoji) is one, not its two UTF-16 units.
    let column = 1
    for (const _ of before.slice(before.lastIndexOf('\n') + 1)) column++
    return { offset: i, line, column, expected: e.expected }
  }
}
