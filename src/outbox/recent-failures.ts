// Recent failures: rows that failed within a window, counted by their last error code (never a message or row data).
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

export interface RecentFailures {
  /** Rows whose failure (their last attempt) finished within the window. */
  total: number
  /** The most frequent codes first (ties by code), at most `limit` of them. */
  byCode: { code: string | null; rows: number }[]
}

/**
 * Rows now `failed` whose last attempt finished in the last `hours` (database time). A failure is
 * always recorded as an attempt (settle, reclaim), and the row keeps no time of its own for it.
 * Reads the failed rows through email_outbox_failed_cancelled_idx (0009) and each one's last
 * attempt through email_attempts_pkey (outbox_id, id): cost O(failed rows kept), never the sent
 * ones. Callers bound it with a statement_timeout.
 */
export async function recentFailures(
  db: Kysely<Database>,
  p: { hours: number; limit: number },
): Promise<RecentFailures> {
  const { rows } = await sql<{ code: string | null; rows: number; total: number }>`
    with recent as (
      select f.last_error_code as code
        from mailer.email_outbox f
       where f.status = 'failed'
         and (select a.finished_at from mailer.email_attempts a
               where a.outbox_id = f.id order by a.id desc limit 1)
             >= now() - make_interval(hours => ${p.hours}::int)
    )
    select code, count(*)::int as rows, (sum(count(*)) over ())::int as total
      from recent group by code
     order by rows desc, code nulls last
     limit ${p.limit}::int`.execute(db)
  return {
    total: rows[0]?.total ?? 0,
    byCode: rows.map((r) => ({ code: r.code, rows: r.rows })),
  }
}
