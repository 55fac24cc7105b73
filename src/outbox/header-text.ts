// Strings written into a message header: a line break in text folds, a control character in a name refuses it.

const LINE_BREAKS = /[\r\n]+/
// U+0000 cannot reach jsonb (22P05), so the class starts at U+0001, as in sql/0023.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding them is the point.
const CONTROL_CHARACTER = /[\u0001-\u001f\u007f]/

export const CONTROL_CHARACTER_MESSAGE =
  'must not contain a control character (such as a line break or a tab)'

/**
 * One line of the text: each run of CR and LF becomes one space, dropped at either end. The rule of
 * mailer.fold_line_breaks (sql/0023), for a subject and a display name. Linear: no backtracking
 * pattern, since a display name has no length limit.
 */
export function foldLineBreaks(text: string): string {
  if (!LINE_BREAKS.test(text)) return text
  const lines = text.split(LINE_BREAKS)
  if (lines[0] === '') lines.shift()
  if (lines.at(-1) === '') lines.pop()
  return lines.join(' ')
}

/** Whether the text holds a character no header name or parameter may (a file name, a content id). */
export const hasControlCharacter = (text: string): boolean => CONTROL_CHARACTER.test(text)
