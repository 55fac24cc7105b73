// A bulk dry run's count with mayHaveBeenDelivered: the candidates' history read in one index scan for them all, not probed row by row.
import { type Expression, type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

/**
 * mayHaveBeenDelivered (delivery-possible.ts) of a row of the CTE `cand`, its history read once for
 * every candidate neither sent nor marked that carries a code (the only ones whose history can
 * decide, earlierInterrupted): their ids as one array, a single scan of email_attempts_pkey
 * (outbox_id, id) for = any(array) (Postgres sorts the keys and reads the index in their order, not
 * a descent per row), its few ambiguous_send entries hashed (never null: ids and outbox_id are not
 * null). The same answer as the row-by-row exists: a row reaching the `in` is in the array, so its
 * history was read. Row by row, the planner took the
 * probe of each row (about 4 buffers, 28,947 for 8,000 failed rows) when the filter's status and
 * requeueable's, counted apart, made it guess 146 rows, and a seq scan of the whole history otherwise.
 */
const deliveredInCand = sql<boolean>`(cand.status = 'sent'
  or cand.send_started_at is not null
  or (cand.last_error_code is not null
      and cand.id in (select h.outbox_id from mailer.email_attempts h
                       where h.outbox_id = any(array(select c.id from cand c
                                                      where c.status <> 'sent'
                                                        and c.send_started_at is null
                                                        and c.last_error_code is not null))
                         and h.error_code = 'ambiguous_send')))`

/**
 * How many of `candidates` (a statement of DELIVERY_POSSIBLE_COLUMNS, the count's other conditions
 * applied) mayHaveBeenDelivered is `delivered` of. Materialized: `cand` is read twice, the
 * candidates' scan run once.
 */
export async function countDelivered(
  db: Kysely<Database>,
  candidates: Expression<unknown>,
  delivered: boolean,
): Promise<number> {
  const { rows } = await sql<{ n: string }>`with cand as materialized (${candidates})
    select count(*) as n from cand
     where ${delivered ? deliveredInCand : sql`not ${deliveredInCand}`}`.execute(db)
  return Number(rows[0]!.n)
}
