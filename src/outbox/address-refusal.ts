// Why a stored address is refused, in enqueue's words (mailer.address_refusal, sql/0086; normalize_recipients' list in one string, sql/0163): one definition for the worker's checks.
import { isEmailAddress } from '../config/email-address.ts'

const NOT_AN_ADDRESS = 'is not a valid e-mail address'

// SQL's [^\x01-\x7f] (no text Postgres holds has U+0000), and the characters no domain's letter is.
const NOT_ASCII = /[\u0080-\u{10ffff}]/u
const NOT_ASCII_EACH = /[\u0080-\u{10ffff}]/gu
const NO_LETTER = /[\x80-\x9f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]/

/**
 * mailer.address_refusal(a): a domain of other letters (its characters outside ASCII, none a
 * control character or a blank, the rest an address's) is named, with what to write instead, as
 * enqueue names it; it goes to the row's last_error, never to a log line. Else the plain words.
 */
export function addressRefusal(a: string): string {
  const at = a.lastIndexOf('@')
  const d = at < 0 ? null : a.slice(at + 1)
  if (
    d !== null &&
    NOT_ASCII.test(d) &&
    !NO_LETTER.test(d) &&
    isEmailAddress(`${a.slice(0, at)}@${d.replace(NOT_ASCII_EACH, 'a')}`)
  )
    return `${NOT_AN_ADDRESS}: its domain ${d} is not written in A-labels: mailer.enqueue_email takes an internationalized domain only as its A-labels (xn--..., as IDNA maps it, UTS #46); POST /v1/outbox converts it`
  return NOT_AN_ADDRESS
}

// Postgres's \s in our C-locale databases: ASCII whitespace alone.
const SEPARATOR = /[\t\n\v\f\r ]*[,;][\t\n\v\f\r ]*/
const LIST_ENDS = /^[\t\n\r ,;]+|[\t\n\r ,;]+$/g
// A piece "Name <address>": a quoted name, or one without " < > @ , ; (sql/0163's).
const NAMED_PIECE = /^(?:"[^"]*"|[^"<>@,;]*)[\t\n\v\f\r ]*<([^<>]*)>$/
const trimSpaces = (s: string) => s.replace(/^ +| +$/g, '')

const isListPiece = (p: string): boolean => {
  if (isEmailAddress(p)) return true
  const named = NAMED_PIECE.exec(p)
  return named !== null && isEmailAddress(trimSpaces(named[1]!))
}

/**
 * Why an address string (trimmed of spaces, and no "Name <address>") is refused: a list joined
 * into one string, two pieces or more between , or ; each an address alone or "Name <address>",
 * is told to be a JSON list (from: that from is one address); any other, addressRefusal's words.
 */
export function addressStringRefusal(address: string, isSender: boolean): string {
  if (/[,;]/.test(address)) {
    const pieces = address.replace(LIST_ENDS, '').split(SEPARATOR)
    if (pieces.length > 1 && pieces.every(isListPiece))
      return `${NOT_AN_ADDRESS}: it holds ${pieces.length} addresses separated by , or ;: ${
        isSender
          ? 'from is one address, the sender (to, cc and bcc take a JSON list)'
          : 'give each its own entry in a JSON list, as ["ann@example.com", "Bob <bob@example.com>"]'
      }`
  }
  return addressRefusal(address)
}
