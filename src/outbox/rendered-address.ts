// A template's address field as rendered: `Name <address>` or an address, or refused naming the field, a list in one string told so as enqueue tells a direct one.
import { isEmailAddress } from '../config/email-address.ts'
import { splitRenderedAddress } from '../config/sender-address.ts'
import { AddressRefused } from './address-refusal.ts'
import type { MailAddress } from './sender.ts'

// What enqueue says of a list in one string (sql/0163) or of a display name holding an address
// (0168) before its advice to a caller, and the hint on quoting such a name that follows it.
const LIST_IN_ONE =
  /^is not a valid e-mail address: (it holds \d+ addresses(?: separated by , or ;|, \d+ in its display name)): .*?((?:; a display name meant to show an address goes in double quotes)?)$/s

/** What to do instead, for the template's field: a list's entry, or a field of one address. */
function advice(field: string): string {
  const list = /^(to|cc|bcc)_addresses\[\d+\]$/.exec(field)
  if (list)
    return `each entry of ${list[1]}_addresses renders one address: give each its own entry, filled from a column that holds one`
  return field === 'from_address'
    ? 'from_address renders one address, the sender'
    : `${field} renders one address`
}

/**
 * The rendered text as an address (mailer.is_email_address's rule, so it meets enqueue's bar). One
 * that is none fails the row with template_error; one holding a list in one string (a column of
 * several addresses) says so in enqueue's words, asked of the database where the row fails
 * (AddressRefused, only the count taken: enqueue's advice is for its callers, as is its A-labels'
 * for a domain of other letters, which a rendered address is refused with plainly).
 */
export function renderedAddress(raw: string, field: string): MailAddress {
  const parsed = splitRenderedAddress(raw)
  if (isEmailAddress(parsed.address)) return parsed
  throw new AddressRefused('template_error', raw, 'message.to', (problem) => {
    const list = LIST_IN_ONE.exec(problem)
    const words = `${field} is not a valid e-mail address after rendering`
    return list ? `${words}: ${list[1]}: ${advice(field)}${list[2]}` : words
  })
}
