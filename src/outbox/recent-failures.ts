// Recent failures: rows that failed within a window, counted by their last error code (never a message or row data).
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

export interface RecentFailures {
  /** Rows whose failure (their last attempt) finished within the window, among those looked at. */
  total: number
  /** The most frequent codes first (ties by code), at most `limit` of them. */
  byCode: { code: string | null; rows: number }[]
  /** False when more than `scanLimit` failed rows are kept, the newest `scanLimit` looked at: `total` is then a lower bound. */
  complete: boolean
}

/**
 * Among the newest `scanLimit` failed rows (by id), those whose last attempt finished in the last
 * `hours` (database time): a failure is always recorded as an attempt (settle, reclaim), and the
 * row keeps no time of its own for it. A row fails days after its creation at most rarely (a far
 * sendAt, a retry), so the newest rows by id hold the recent failures, and the read stays bounded
 * however many failed rows are kept: email_outbox_failed_cancelled_idx (0009, status, id) walked
 * backwards, an index-only scan since 0025 carries last_error_code in it (a new connection pays for
 * each page it touches first), then each row's last attempt through email_attempts_pkey (outbox_id, id).
 */
export async function recentFailures(
  db: Kysely<Database>,
  p: { hours: number; limit: number; scanLimit: number },
): Promise<RecentFailures> {
  const { rows } = await sql<{
    scanned: number
    total: number
    by_code: { code: string | null; rows: number }[]
  }>`
    with newest as (
      -- One more than the bound: whether any failed row was left out (complete).
      select f.id, f.last_error_code as code, row_number() over (order by f.id desc) as place
        from mailer.email_outbox f
       where f.status = 'failed'
       order by f.id desc
       limit ${p.scanLimit}::int + 1
    ), recent as (
      select n.code, count(*)::int as rows
        from newest n
       where n.place <= ${p.scanLimit}::int
         and (select a.finished_at from mailer.email_attempts a
               where a.outbox_id = n.id order by a.id desc limit 1)
             >= now() - make_interval(hours => ${p.hours}::int)
       group by n.code
    )
    select (select count(*) from newest)::int as scanned,
           (select coalesce(sum(rows), 0) from recent)::int as total,
           (select coalesce(json_agg(json_build_object('code', t.code, 'rows', t.rows)
                                     order by t.rows desc, t.code nulls last), '[]'::json)
              from (select code, rows from recent
                     order by rows desc, code nulls last limit ${p.limit}::int) t) as by_code`.execute(
    db,
  )
  const r = rows[0]
  return {
    total: r?.total ?? 0,
    byCode: r?.by_code ?? [],
    complete: (r?.scanned ?? 0) <= p.scanLimit,
  }
}
