// Bodies made of blanks only (refused as "" is: sql/0175, blank-body.ts) and near ones that are a body, one list for every path that judges them.

/** [what, body]: each shows nothing, refused alone (without an attachment) by SQL, the API and at send. */
export const BLANK_BODIES: readonly (readonly [string, string])[] = [
  ['spaces and a line break', '   \n'],
  ['tabs', '\t\t'],
  ['CR LF, a vertical tab, a form feed', '\r\n\v\f'],
  ['a no-break space (U+00A0)', '\u00a0'],
  ['an ideographic space (U+3000)', '\u3000'],
  ['a zero-width space (U+200B)', '\u200b'],
  ['a byte order mark (U+FEFF)', '\ufeff'],
  ['next line (U+0085), line and paragraph separators', '\u0085\u2028\u2029'],
  ['an em space and a narrow no-break space', '\u2003\u202f'],
]

/** [what, body]: a body, taken and sent as given, blanks around it or not. */
export const NOT_BLANK_BODIES: readonly (readonly [string, string])[] = [
  ['a dot among blanks', ' \u00a0.\u3000'],
  ['markup (html is not read for what it shows)', '<p> </p>'],
  ['a non-breaking space written as an entity', '&nbsp;'],
  ['a Hangul filler (U+3164, a letter)', '\u3164'],
  ['a braille blank (U+2800, a symbol)', '\u2800'],
  ['a Mongolian vowel separator (U+180E, no longer a space)', '\u180e'],
]
