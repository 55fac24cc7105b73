// What an e-mail address must look like: the rule of mailer.is_email_address (sql/0001), at enqueue and at send.

/**
 * The pattern alone (the whole rule is isEmailAddress). Its blanks are ASCII whitespace,
 * as Postgres's \s is in a C-locale database (JavaScript's \s would also refuse a no-break space or
 * a byte-order mark, which no locale's \s holds): a row enqueue took never fails at send for it.
 */
export const EMAIL_ADDRESS =
  /^[^@\t\n\v\f\r <>(),;:"[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/

/**
 * mailer.is_email_address: at most 320 characters, counted as SQL's length() counts them (code
 * points: an emoji is one, though two UTF-16 units), and the pattern.
 */
export const isEmailAddress = (a: string): boolean =>
  (a.length <= 320 || [...a].length <= 320) && EMAIL_ADDRESS.test(a)
