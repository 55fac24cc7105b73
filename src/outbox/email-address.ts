// What an e-mail address must look like: the rule of mailer.is_email_address (sql/0001, 0043), at enqueue and at send.
import { foldControlCharacters } from './header-text.ts'

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

// "Name <address>" as mailer.normalize_recipients takes it (sql/0035): a name in double quotes, or
// one without " < > @ , ; (a list in one string is no such entry); blanks as Postgres's \s.
const NAMED_ADDRESS =
  /^[\t\n\v\f\r ]*(?:"([^"]*)"|([^"<>@,;]*))[\t\n\v\f\r ]*<([^<>]*)>[\t\n\v\f\r ]*$/
// btrim's spaces only, as the SQL trims.
const trimSpaces = (s: string) => s.replace(/^ +| +$/g, '')

/**
 * A string written "Name <address>" as enqueue stores it ({address, name}: the name on one line,
 * none when empty); null when the string is not one, or its address is none.
 */
export function namedAddress(s: string): { address: string; name?: string } | null {
  const m = NAMED_ADDRESS.exec(s)
  if (!m) return null
  const address = trimSpaces(m[3]!)
  if (!isEmailAddress(address)) return null
  const name = trimSpaces(foldControlCharacters(m[1] ?? m[2]!))
  return name === '' ? { address } : { address, name }
}
