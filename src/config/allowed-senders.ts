// MAIL_FROM_ALLOWED: the sender mailboxes a row may name in message.from (null: any the app may send as), and the one rule matching a row's sender against such a list.
import { isEmailAddress } from './email-address.ts'
import { isGraphUserId } from './sender-address.ts'

/**
 * A mailbox as Exchange matches it: case-insensitive, so a list and a row compare alike. The send
 * gate keys a row's mailbox the same way (outbox/send-gate.ts mailboxKey).
 */
export const senderKey = (address: string): string => address.trim().toLowerCase()

/**
 * Whether a row (or a token) may name `address` as its sender: any address without a list, else
 * one the list holds. A row naming no sender goes from MAIL_FROM, which is never asked here.
 */
export const isSenderAllowed = (allowed: ReadonlySet<string> | null, address: string): boolean =>
  allowed === null || allowed.has(senderKey(address))

/**
 * MAIL_FROM_ALLOWED parsed: addresses apart by commas or blanks, each as enqueue takes a sender's
 * (mailer.is_email_address). A Graph user id is refused: a row names its sender by address, so an
 * id could match none. Entries are named by position, never by value (the line reaches the log).
 */
export function parseAllowedSenders(raw: string | undefined): {
  allowed: ReadonlySet<string> | null
  problems: string[]
} {
  if (raw === undefined) return { allowed: null, problems: [] }
  const entries = raw.split(/[\s,]+/).filter((e) => e !== '')
  const problems: string[] = []
  // Taken, an empty list refused every row naming a sender; no one means that (to let rows name
  // none, MAIL_FROM's address alone is listed): separators alone are a value gone missing.
  if (entries.length === 0) {
    problems.push(
      'MAIL_FROM_ALLOWED: lists no mailbox (only commas or blanks): list the addresses rows may name in "from", or unset it to let them name any',
    )
  }
  entries.forEach((e, i) => {
    if (isGraphUserId(e)) {
      problems.push(
        `MAIL_FROM_ALLOWED: entry ${i + 1} is a Graph user id: list the mailbox's e-mail address, which rows name in "from"`,
      )
    } else if (!isEmailAddress(e)) {
      problems.push(
        `MAIL_FROM_ALLOWED: entry ${i + 1} is not an e-mail address (list plain addresses, apart by commas)`,
      )
    }
  })
  return { allowed: new Set(entries.map(senderKey)), problems }
}
