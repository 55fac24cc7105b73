// lowestMatching: the next batch of a bulk action, found status by status through the index holding each status.
import { type Expression, type ExpressionBuilder, type Kysely, type SqlBool, sql } from 'kysely'
import type { Database, OutboxStatus } from '../db/schema.ts'

/**
 * The ids of up to `limit` rows matching `where`, lowest first, among rows in `statuses`. One
 * statement: for each status, its matching rows in id order through the partial index that holds
 * that status (failed, cancelled: email_outbox_failed_cancelled_idx (status, id), 0009; sending:
 * email_outbox_sending_idx (id); pending: email_outbox_claim_idx, sorted, as no pending index is in
 * id order), then the lowest of them. So the cost follows the rows in those statuses, never the
 * table: in id order over the primary key instead, which Postgres picks when it guesses matches
 * are spread evenly, a batch of pending rows at the end of a million kept ones read them all.
 * Takes no locks: the caller's update locks each row and checks `where` again on its latest version.
 */
export async function lowestMatching(
  db: Kysely<Database>,
  statuses: readonly OutboxStatus[],
  where: (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) => Expression<SqlBool>,
  limit: number,
): Promise<string[]> {
  const branches = statuses.map(
    (status) =>
      sql`select id from (${db
        .selectFrom('mailer.email_outbox')
        .select('id')
        .where((eb) => eb.and([eb('status', '=', status), where(eb)]))
        // id + 0 for pending: ordered by the bare id, the planner may walk the primary key instead.
        .orderBy(status === 'pending' ? sql`id + 0` : sql`id`)
        .limit(limit)}) as ${sql.id(status)}`,
  )
  if (branches.length === 0) return []
  const { rows } = await sql<{ id: string }>`
    select id from (${sql.join(branches, sql` union all `)}) as candidates
     order by id
     limit ${limit}`.execute(db)
  return rows.map((r) => String(r.id))
}
