// What an e-mail address must look like: the rule of mailer.is_email_address (sql/0001, 0043), for MAIL_FROM at the start, every address at enqueue and at send.

/**
 * The pattern alone (the whole rule is isEmailAddress), as sql/0043 spells it: no ASCII whitespace,
 * no control character (U+0001-U+001F, U+007F-U+009F) and none of the blanks JavaScript's \s holds
 * in the local part. nodemailer drops a control character from an address and splits one at such a
 * blank ("ana\u00a0maria@…" became "ana <maria@…>"): the file transport wrote another address.
 */
export const EMAIL_ADDRESS =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point.
  /^[^@\t\n\v\f\r <>(),;:"[\]\\\u0001-\u001f\u007f-\u009f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/

/**
 * mailer.is_email_address: at most 320 characters, counted as SQL's length() counts them (code
 * points: an emoji is one, though two UTF-16 units), and the pattern.
 */
export const isEmailAddress = (a: string): boolean =>
  (a.length <= 320 || [...a].length <= 320) && EMAIL_ADDRESS.test(a)
