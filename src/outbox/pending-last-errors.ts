// Pending rows waiting after an error, counted by their last error code (never a message or row data): why mail that is not failing does not go.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { PACED_CODE } from './settle-item.ts'

export interface PendingLastErrors {
  /** Pending rows whose last try met an error (a code is set), among those looked at. */
  total: number
  /** The most frequent codes first (ties by code), at most `limit` of them. */
  byCode: { code: string; rows: number }[]
  /** False when more than `scanLimit` such rows wait, so only the first were counted: `total` is then a lower bound. */
  complete: boolean
}

/**
 * The pending rows whose last try met an error, by code: a refused credential (`AADSTS…`), a
 * refused or throttled mailbox (Graph's code, `mailbox_paused`), Graph out of reach. Such rows wait
 * uncounted and do not fail for a day, so neither the failures nor the exit code show them. A row
 * that met one is given back due later than every row not yet tried, so they are read on their
 * own, not among the first pending rows (a backlog's untried ones): email_outbox_pending_error_idx
 * (0173, partial on pending with a code: priority, send_at, id, carrying the code), the first
 * `scanLimit` in the claim's order, and one more to tell whether any is left out. Bounded however
 * large the backlog.
 * A row given back for its mailbox's pacing turn (PACED_CODE) met no error: left out (the index's
 * predicate too), as status counts it held back.
 */
export async function pendingLastErrors(
  db: Kysely<Database>,
  p: { limit: number; scanLimit: number },
): Promise<PendingLastErrors> {
  const { rows } = await sql<{
    looked: number
    total: number
    by_code: { code: string; rows: number }[]
  }>`
    with first as (
      select o.last_error_code as code,
             row_number() over (order by o.priority, o.send_at, o.id) as n
        from mailer.email_outbox o
       -- 0173's predicate as written, the code a literal: proved so in a generic plan too.
       where o.status = 'pending' and o.last_error_code is not null
         and o.last_error_code <> ${sql.lit(PACED_CODE)}
       order by o.priority, o.send_at, o.id
       limit ${p.scanLimit}::int + 1
    ), coded as (
      select f.code, count(*)::int as rows from first f where f.n <= ${p.scanLimit}::int group by f.code
    )
    select (select count(*) from first)::int as looked,
           (select coalesce(sum(rows), 0) from coded)::int as total,
           (select coalesce(json_agg(json_build_object('code', t.code, 'rows', t.rows)
                                     order by t.rows desc, t.code), '[]'::json)
              from (select code, rows from coded order by rows desc, code limit ${p.limit}::int) t)
             as by_code`.execute(db)
  const r = rows[0]
  return {
    total: r?.total ?? 0,
    byCode: r?.by_code ?? [],
    complete: (r?.looked ?? 0) <= p.scanLimit,
  }
}
