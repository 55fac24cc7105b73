// A blank body: a text or html made only of characters that show nothing, no body as "" is none (sql/0175).

/**
 * The characters a body made only of shows nothing: ASCII's (tab, LF, VT, FF, CR, space), the rest
 * of Unicode's White_Space (U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F,
 * U+3000), and the zero-width space, joiners, word joiner and byte order mark (U+200B-U+200D,
 * U+2060, U+FEFF). A bracket expression's inside, read alike by JavaScript and by Postgres, which
 * mailer.enqueue_email spells out in these very characters: Postgres's \s and [:space:] follow the
 * database's locale (C: ASCII alone), JavaScript's \s takes U+FEFF but not U+0085. Letters and
 * symbols that look blank (U+3164, U+2800) are a body, and so is markup: "<p> </p>" is not read for
 * what it shows.
 */
export const BLANK_CLASS = String.raw`\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff`

const BLANK = new RegExp(`^[${BLANK_CLASS}]*$`)

/** "" or blanks only: no body. */
export const isBlank = (body: string): boolean => BLANK.test(body)
