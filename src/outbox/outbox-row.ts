// Read-only inspection of one row: the row with its bodies (and its template, for the detail), and its attempt history.
import { type Kysely, sql } from 'kysely'
import type { Database, TemplateRow } from '../db/schema.ts'
import { mayHaveBeenDelivered } from './delivery-possible.ts'
import { parseJsonExactly } from './exact-json.ts'
import { leaseOwnerName } from './lease-owner-name.ts'
import { type Attempt, type OutboxRecord, toAttempt, toOutboxRecord } from './outbox-view.ts'

/** One row with bodies; another tenant's row is simply not found. */
export async function findOutboxRow(
  db: Kysely<Database>,
  id: string,
  scopeTenant: string | null,
): Promise<OutboxRecord | null> {
  const row = await rowRead(db, id, scopeTenant).executeTakeFirst()
  return row ? toRecord(row) : null
}

/**
 * findOutboxRow's row with the template it names as that template stands now (null: none named, or
 * gone), in the row's statement (templates' primary key, name): the detail renders a template's row
 * from it without a statement of its own (round 54: one of six, 0.1–0.3 ms of a 1.0–1.3 ms GET).
 * And whether a send may have delivered the row (delivery-possible.ts), in the same statement: at
 * most one probe of its history's primary key, whose pages the detail reads next.
 */
export async function findOutboxRowWithTemplate(
  db: Kysely<Database>,
  id: string,
  scopeTenant: string | null,
): Promise<{
  row: OutboxRecord
  template: TemplateRow | null
  mayHaveBeenDelivered: boolean
} | null> {
  const row = await rowRead(db, id, scopeTenant)
    .select(
      sql<TemplateJson | null>`(select to_jsonb(t) from mailer.templates t
                                 where t.name = mailer.email_outbox.template)`.as('template_json'),
    )
    .select(mayHaveBeenDelivered.as('may_have_been_delivered'))
    .executeTakeFirst()
  if (!row) return null
  const { template_json: t, may_have_been_delivered: delivered, ...rest } = row
  return {
    mayHaveBeenDelivered: delivered,
    row: toRecord(rest),
    template: t && { ...t, created_at: new Date(t.created_at), updated_at: new Date(t.updated_at) },
  }
}

/** A template row as to_jsonb writes it: its timestamps as text. */
type TemplateJson = Omit<TemplateRow, 'created_at' | 'updated_at'> & {
  created_at: string
  updated_at: string
}

function rowRead(db: Kysely<Database>, id: string, scopeTenant: string | null) {
  return (
    db
      .selectFrom('mailer.email_outbox')
      .selectAll()
      // The source row as its text too: the driver's JSON.parse would change its numbers (12.50 to
      // 12.5, a bigint past 2^53), which the API answers as Postgres wrote them (exact-json.ts).
      .select(sql<string | null>`source_row::text`.as('source_row_text'))
      .select(leaseOwnerName('mailer.email_outbox.lease_owner').as('lease_owner_name'))
      .where('id', '=', id)
      .$if(scopeTenant !== null, (q) => q.where('tenant', '=', scopeTenant!))
  )
}

function toRecord(
  row: NonNullable<Awaited<ReturnType<ReturnType<typeof rowRead>['executeTakeFirst']>>>,
): OutboxRecord {
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
