// Strings written into a message header: a control character in text folds, in a name or an id refuses it.

// U+0000 cannot reach jsonb (22P05), so the class starts at U+0001, as in sql/0023 and 0024.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point.
const CONTROL_CHARACTERS = /[\u0001-\u001f\u007f]+/
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point.
const CONTROL_CHARACTER = /[\u0001-\u001f\u007f]/
// A header value may hold a tab (RFC 5322 whitespace); no other control character.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point.
const CONTROL_CHARACTER_BUT_TAB = /[\u0001-\u0008\u000a-\u001f\u007f]/

export const CONTROL_CHARACTER_MESSAGE =
  'must not contain a control character (such as a line break or a tab)'
export const HEADER_VALUE_MESSAGE =
  'must be a one-line string without control characters (a tab is allowed)'

/**
 * One line of the text: each run of control characters (U+0001-U+001F with CR, LF and TAB, and
 * U+007F) becomes one space, dropped at either end. The rule of mailer.fold_control_characters
 * (sql/0024), for a subject and a display name. Linear: no backtracking pattern, since a display
 * name has no length limit.
 */
export function foldControlCharacters(text: string): string {
  if (!CONTROL_CHARACTER.test(text)) return text
  const parts = text.split(CONTROL_CHARACTERS)
  if (parts[0] === '') parts.shift()
  if (parts.at(-1) === '') parts.pop()
  return parts.join(' ')
}

/** Whether the text holds a character no header name or parameter may (a file name, a content id). */
export const hasControlCharacter = (text: string): boolean => CONTROL_CHARACTER.test(text)

/** Whether a header value (message.headers) holds a control character other than a tab. */
export const isOneLineHeaderValue = (text: string): boolean => !CONTROL_CHARACTER_BUT_TAB.test(text)
