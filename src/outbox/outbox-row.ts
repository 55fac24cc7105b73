// Read-only inspection of one row: the row with its bodies, and its attempt history.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { parseJsonExactly } from './exact-json.ts'
import { leaseOwnerName } from './lease-owner-name.ts'
import { type Attempt, type OutboxRecord, toAttempt, toOutboxRecord } from './outbox-view.ts'

/** One row with bodies; another tenant's row is simply not found. */
export async function findOutboxRow(
  db: Kysely<Database>,
  id: string,
  scopeTenant: string | null,
): Promise<OutboxRecord | null> {
  const row = await db
    .selectFrom('mailer.email_outbox')
    .selectAll()
    // The source row as its text too: the driver's JSON.parse would change its numbers (12.50 to
    // 12.5, a bigint past 2^53), which the API answers as Postgres wrote them (exact-json.ts).
    .select(sql<string | null>`source_row::text`.as('source_row_text'))
    .select(leaseOwnerName('mailer.email_outbox.lease_owner').as('lease_owner_name'))
    .where('id', '=', id)
    .$if(scopeTenant !== null, (q) => q.where('tenant', '=', scopeTenant!))
    .executeTakeFirst()
  if (!row) return null
  const { source_row_text: text, lease_owner_name: owner, ...columns } = row
  return toOutboxRecord({
    ...columns,
    lease_owner: owner,
    source_row: text === null ? null : parseJsonExactly(text),
  })
}

/** The attempt history of one row, oldest first (served by email_attempts_pkey (outbox_id, id)). */
export async function listAttempts(db: Kysely<Database>, outboxId: string): Promise<Attempt[]> {
  const rows = await db
    .selectFrom('mailer.email_attempts')
    .selectAll()
    .where('outbox_id', '=', outboxId)
    .orderBy('id', 'asc')
    .execute()
  return rows.map(toAttempt)
}
