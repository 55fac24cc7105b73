// An address written "Name <address>" as mailer.normalize_recipients takes it (sql/0035); the address rule is config/email-address.ts's.
import { isEmailAddress } from '../config/email-address.ts'
import { foldControlCharacters } from './header-text.ts'

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
