// Pending rows waiting after an error, counted by their last error code (never a message or row data): why mail that is not failing does not go.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

export interface PendingLastErrors {
  /** Pending rows whose last try met an error (a code is set), among those looked at. */
  total: number
  /** The most frequent codes first (ties by code), at most `limit` of them. */
  byCode: { code: string; rows: number }[]
  /** False when `scanLimit` pending rows were looked at, so more may wait: `total` is then a lower bound. */
  complete: boolean
}

/**
 * Among the first `scanLimit` pending rows in the claim's order, those whose last try met an error,
 * by code: a refused credential (`AADSTS…`), a refused or throttled mailbox (Graph's code,
 * `mailbox_paused`), Graph out of reach. Such rows wait uncounted and do not fail for a day, so
 * neither the failures nor the exit code show them. Bounded however large the backlog:
 * email_outbox_claim_idx (0001, partial on pending: priority, send_at, id) walked in order, then
 * each row's code from the table.
 */
export async function pendingLastErrors(
  db: Kysely<Database>,
  p: { limit: number; scanLimit: number },
): Promise<PendingLastErrors> {
  const { rows } = await sql<{
    scanned: number
    total: number
    by_code: { code: string; rows: number }[]
  }>`
    with first as (
      select o.last_error_code as code
        from mailer.email_outbox o
       where o.status = 'pending'
       order by o.priority, o.send_at, o.id
       limit ${p.scanLimit}::int
    ), coded as (
      select f.code, count(*)::int as rows from first f where f.code is not null group by f.code
    )
    select (select count(*) from first)::int as scanned,
           (select coalesce(sum(rows), 0) from coded)::int as total,
           (select coalesce(json_agg(json_build_object('code', t.code, 'rows', t.rows)
                                     order by t.rows desc, t.code), '[]'::json)
              from (select code, rows from coded order by rows desc, code limit ${p.limit}::int) t)
             as by_code`.execute(db)
  const r = rows[0]
  return {
    total: r?.total ?? 0,
    byCode: r?.by_code ?? [],
    complete: (r?.scanned ?? 0) < p.scanLimit,
  }
}
