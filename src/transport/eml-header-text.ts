// Header text (the subject, X- header values) as the .eml's reader reads it back: the text given, on lines of at most 998 characters.

/** RFC 2047's encoder, nodemailer's: `encodeWord(text, 'Q', 52)` is encoded words of UTF-8, apart by spaces. */
type EncodeWord = (text: string, encoding: 'Q', maxLength: number) => string

// RFC 5322 2.1.1: a line holds at most 998 characters. The composer folds a header at blanks only,
// so one word longer than a line's room after the longest name ("X-" and 70, ": ") stays whole.
const LONGEST_WORD = 900

/**
 * `text` as the composer should write it. Encoded whole (RFC 2047, which folds at any point) when
 * a reader would not read it back as given: it holds "=?", which the composer passes on as it is
 * when it reads as an encoded word (a reader decodes one wherever unstructured text holds it:
 * "=?UTF-8?B?SGk=?=" came back "Hi", while Graph sends the subject as text); or a word too long
 * for a line (an .eml line of 2,000 characters: mail software refuses a line past 998). Else as
 * given: the composer encodes what else needs it.
 */
export function emlHeaderText(text: string, encodeWord: EncodeWord): string {
  const literal =
    !text.includes('=?') &&
    (text.length <= LONGEST_WORD || text.split(/[ \t]+/).every((w) => w.length <= LONGEST_WORD))
  return literal ? text : encodeWord(text, 'Q', 52)
}
