// An address written "Name <address>" as mailer.normalize_recipients takes it (sql/0035); the address rule is config/email-address.ts's.
import { isEmailAddress } from '../config/email-address.ts'
import { BLANK_CLASS } from './blank-body.ts'
import { foldControlCharacters } from './header-text.ts'

// "Name <address>" as mailer.normalize_recipients takes it (sql/0035): a name in double quotes, or
// one without " < > @ , ; (a list in one string is no such entry). Blanks around it are
// blank-body.ts's, as SQL spells them (0177): its \s was the database locale's (ASCII in C, U+3000
// and more in an ICU or glibc UTF-8 one), and a string it took there this did not read, so that
// the API's sender check passed a sender the row was then stored with.
const NAMED_ADDRESS = new RegExp(
  `^[${BLANK_CLASS}]*(?:"([^"]*)"|([^"<>@,;]*))[${BLANK_CLASS}]*<([^<>]*)>[${BLANK_CLASS}]*$`,
)
// A sender's form (sql/0194): after the > and around a quoted name ASCII's blanks alone, where an
// earlier release's API check reads no other; between an unquoted name's words, any.
const NAMED_SENDER = /^[\t\n\v\f\r ]*(?:"[^"]*"|[^"<>@,;]*)[\t\n\v\f\r ]*<[^<>]*>[\t\n\v\f\r ]*$/
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

/** namedAddress of message.from, the sender, as enqueue takes one (sql/0194); null for any other. */
export const namedSender = (s: string): { address: string; name?: string } | null =>
  NAMED_SENDER.test(s) ? namedAddress(s) : null
