// What an e-mail address must look like: the rule of mailer.is_email_address (sql/0001), at enqueue and at send.
import { foldControlCharacters } from './header-text.ts'

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
