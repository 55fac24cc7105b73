// Whether a request may enqueue a message naming its `from`: MAIL_FROM_ALLOWED for every caller, the token's senders claim for its own.
import { isSenderAllowed } from '../config/allowed-senders.ts'
import { isEmailAddress } from '../config/email-address.ts'
import { AppError } from '../errors.ts'
import { namedSender } from '../outbox/email-address.ts'
import type { Principal } from './context.ts'

/**
 * The address `from` names as mailer.normalize_message reads it ("Name <address>" with the blanks a
 * sender takes, sql/0194; an address; or {address, name}); null for none, and for one it would
 * refuse, which enqueue then names (400).
 * Invariant: whatever Postgres stores as the sender, this reads as the same address (sql/0035's
 * forms, trimmed as it trims): else a token's claim, which no worker checks again, could be passed.
 */
function senderAddress(from: unknown): string | null {
  const raw =
    typeof from === 'string'
      ? (namedSender(from)?.address ?? from)
      : from !== null && typeof from === 'object' && 'address' in from
        ? (from as { address: unknown }).address
        : null
  if (typeof raw !== 'string') return null
  const address = raw.trim()
  return isEmailAddress(address) ? address : null
}

/** Throws 403 sender_not_allowed when `message.from` names a mailbox this caller may not name. */
export function checkEnqueuedSender(
  message: { from?: unknown },
  allowed: ReadonlySet<string> | null,
  principal: Principal,
): void {
  const address = senderAddress(message.from)
  if (address === null) return
  if (!isSenderAllowed(allowed, address)) {
    throw new AppError(
      'sender_not_allowed',
      'message.from names a mailbox MAIL_FROM_ALLOWED does not list',
    )
  }
  if (!isSenderAllowed(principal.senders, address)) {
    throw new AppError(
      'sender_not_allowed',
      "message.from names a mailbox the token's senders claim does not list",
    )
  }
}
