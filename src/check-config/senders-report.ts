// What check-config says about the senders rows may name: MAIL_FROM_ALLOWED's list (counted, never its addresses), and MAIL_FROM beside it.
import { isSenderAllowed } from '../config/allowed-senders.ts'
import { isGraphUserId, splitNamedAddress } from '../config/sender-address.ts'
import type { Config } from '../config.ts'

export function describeSenders(config: Pick<Config, 'allowedSenders' | 'mailFrom'>): string[] {
  const allowed = config.allowedSenders
  if (allowed === null) {
    return [
      'senders: a row may name in "from" any mailbox the app registration may send as (MAIL_FROM_ALLOWED unset; with Mail.Send alone, every mailbox of the organisation unless Exchange confines the app: deploy guide, step 3)',
    ]
  }
  const lines = [
    `senders: a row may name in "from" only the ${allowed.size} mailbox(es) MAIL_FROM_ALLOWED lists (others fail sender_not_allowed); one naming none goes from MAIL_FROM`,
  ]
  const from = config.mailFrom
  // A user id names no address a row could write; an address unlisted refuses rows that spell it.
  if (from && !isGraphUserId(from)) {
    if (!isSenderAllowed(allowed, splitNamedAddress(from).address)) {
      lines.push(
        'warning: MAIL_FROM_ALLOWED does not list MAIL_FROM\'s address: rows naming no "from" still go from it, but a row naming it in "from" fails sender_not_allowed',
      )
    }
  }
  return lines
}
