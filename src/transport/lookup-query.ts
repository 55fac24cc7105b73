// The mailbox lookup's query: the messages tagged with a row's OutboxId, the fields selected and the database properties expanded.
import {
  OUTBOX_DATABASE_ID_PROPERTY_ID,
  OUTBOX_DATABASE_PROPERTY_ID,
  OUTBOX_ID_PROPERTY_ID,
} from './graph-message.ts'

/** The `$filter` that finds the message tagged with `outboxId` (OutboxId extended property). */
export function lookupFilter(outboxId: string): string {
  const quote = (s: string) => `'${s.replaceAll("'", "''")}'`
  return `singleValueExtendedProperties/Any(ep: ep/id eq ${quote(OUTBOX_ID_PROPERTY_ID)} and ep/value eq ${quote(outboxId)})`
}

/**
 * The expansion that lists each match's OutboxDatabaseId and OutboxDatabase (the one way to read a
 * property back; `or` of ids as public Graph clients ask it, not in Microsoft's examples, which
 * name one: check-config --connect asks this very query, so a Graph that refused it says so there).
 */
const EXPAND_DATABASE = `singleValueExtendedProperties($filter=id eq '${OUTBOX_DATABASE_ID_PROPERTY_ID}' or id eq '${OUTBOX_DATABASE_PROPERTY_ID}')`

/**
 * The fields a lookup selects of each match for a database's row: its subject and To tell the row's
 * own message from another deployment's sent by a release before OutboxDatabaseId (lookup-match.ts).
 */
export const ROW_MAIL_SELECT = 'id,subject,toRecipients'

/**
 * A lookup's query options: the messages tagged with `outboxId`, with `select`'s fields and their
 * OutboxDatabaseId and OutboxDatabase, `top` per page. check-config asks it too, so a grant that
 * reads the mailbox but not the properties fails the check rather than every lookup.
 */
export function lookupQuery(outboxId: string, select: string, top: number): string {
  return `?$filter=${encodeURIComponent(lookupFilter(outboxId))}&$select=${select}&$expand=${encodeURIComponent(EXPAND_DATABASE)}&$top=${top}`
}
