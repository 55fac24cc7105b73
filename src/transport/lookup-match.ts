// Which of the messages tagged with a row's outbox id is the row's own: by the database it names, else by its content.

/**
 * The database whose rows a lookup is for: `name` as its messages carry it (OutboxDatabase);
 * `alone` when no other database of the process sends, so a message naming none (sent by a
 * release before the property) can only be its row's.
 */
export interface LookupDatabase {
  name: string
  alone: boolean
}

/** What of the row's mail tells its message from another database's with the same id. */
export interface RowMail {
  subject: string
  to: readonly { address: string }[]
}

export interface ListedMessage {
  singleValueExtendedProperties?: unknown
  subject?: unknown
  toRecipients?: unknown
}

/**
 * Whether a message tagged with the row's outbox id is the row's: one naming the row's database,
 * or naming none (a release before OutboxDatabase sent it) when it is the only database sending,
 * or, with several, when it is the row's mail (its subject and To). Ids repeat across databases:
 * another database's row with the same id is another mail, and taking its message for this row's
 * would mark a mail sent that never went. But a row whose send an older binary started and a
 * rolling deploy stopped is looked up by the new one: its message names no database, and counted
 * as no one's, the row was sent twice.
 */
export function isTheRows(
  m: ListedMessage,
  database: LookupDatabase | undefined,
  mail: RowMail | undefined,
): boolean {
  if (!database) return true
  // The expansion lists only OutboxDatabase (Graph may spell its id otherwise: not compared).
  const props = Array.isArray(m.singleValueExtendedProperties)
    ? m.singleValueExtendedProperties
    : []
  const named = (props[0] as { value?: unknown } | undefined)?.value
  if (typeof named !== 'string') return database.alone || (mail !== undefined && isMail(m, mail))
  // Graph compares property values without case; a database name is lower case anyway.
  return named.toLowerCase() === database.name.toLowerCase()
}

/** Same subject, same To addresses (as a set; Graph compares addresses without case). */
function isMail(m: ListedMessage, mail: RowMail): boolean {
  if (m.subject !== mail.subject || !Array.isArray(m.toRecipients)) return false
  const listed = m.toRecipients.map((r) =>
    String((r as { emailAddress?: { address?: unknown } })?.emailAddress?.address).toLowerCase(),
  )
  const own = mail.to.map((a) => a.address.toLowerCase())
  return listed.length === own.length && own.every((a) => listed.includes(a))
}
