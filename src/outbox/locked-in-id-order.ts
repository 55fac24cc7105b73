// The bulk actions' lock step: their candidate rows locked first, in id order, as a CTE named `locked`.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.ts'
import type { Where } from './candidate-ids.ts'

/**
 * `db` with a materialized CTE `locked`: the rows among `ids` that match `where`, locked FOR UPDATE
 * in id order, as settleLeases locks a worker's batch: statements that lock overlapping rows in
 * opposite orders deadlock. Invariant: `where` is judged again on each row's latest version when
 * its lock is taken, so a statement that writes only `locked`'s rows writes none that stopped
 * matching meanwhile. Uses the primary key.
 */
export function withLockedInIdOrder(db: Kysely<Database>, ids: readonly string[], where: Where) {
  return db.with(
    (cte) => cte('locked').materialized(),
    (qb) =>
      qb
        .selectFrom('mailer.email_outbox')
        .select('id')
        .where('id', 'in', ids)
        .where(where)
        .orderBy('id')
        .forUpdate(),
  )
}
