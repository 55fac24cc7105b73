// Which of the messages tagged with a row's outbox id is the row's own: by its database's id, else by the name it carries and its content.

/**
 * The database whose rows a lookup is for: `name` as its messages carry it (OutboxDatabase); `id`,
 * its own id as they carry it too (OutboxDatabaseId, mailer.database_identity), absent for a sender
 * not wired to a database's id (a test's); `alone` when no other database of the process sends.
 */
export interface LookupDatabase {
  name: string
  alone: boolean
  id?: string
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
 * Whether a message tagged with the row's outbox id is the row's. Ids repeat across databases, and
 * so do names: two deployments with one database each through DATABASE_URL both call it `default`
 * (staging and production sending from one mailbox), and taking the other's message for this row's
 * marks a mail sent that never went. So a message carrying a database id is the row's only with
 * its database's own. One carrying none was sent by a release before the id (a send a rolling
 * deploy interrupted, looked up by the new release: counted as no one's, it went twice): it is the
 * row's when it names the row's database or none, and is the row's mail (its subject and To), which
 * another deployment's row with the same id and name is not unless it is the same mail.
 * Without `database.id`, as before the id: a message naming the row's database; one naming none
 * when `alone`, else by its content.
 */
export function isTheRows(
  m: ListedMessage,
  database: LookupDatabase | undefined,
  mail: RowMail | undefined,
): boolean {
  if (!database) return true
  const { id, name } = carried(m)
  if (database.id !== undefined) {
    // Graph compares property values without case; a uuid is written in lower case anyway.
    if (id !== undefined) return id.toLowerCase() === database.id.toLowerCase()
    if (name !== undefined && name.toLowerCase() !== database.name.toLowerCase()) return false
    return mail !== undefined && isMail(m, mail)
  }
  if (name === undefined) return database.alone || (mail !== undefined && isMail(m, mail))
  return name.toLowerCase() === database.name.toLowerCase()
}

/**
 * The OutboxDatabase and OutboxDatabaseId values the expansion listed, told apart by the name that
 * ends the property's id (its set's GUID is not compared: Graph may spell it otherwise).
 */
function carried(m: ListedMessage): { id?: string; name?: string } {
  const props = Array.isArray(m.singleValueExtendedProperties)
    ? m.singleValueExtendedProperties
    : []
  const out: { id?: string; name?: string } = {}
  for (const p of props as { id?: unknown; value?: unknown }[]) {
    if (typeof p?.value !== 'string' || typeof p.id !== 'string') continue
    const property = / Name (\S+)$/.exec(p.id)?.[1]
    if (property === 'OutboxDatabaseId') out.id = p.value
    else if (property === 'OutboxDatabase') out.name = p.value
  }
  return out
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
