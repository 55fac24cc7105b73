// What a statement read of the outbox's heap, measured in a transaction that is rolled back afterwards.
import { type Kysely, sql, type Transaction } from 'kysely'
import type pg from 'pg'
import type { Database } from '../../src/db/schema.ts'

class Rollback extends Error {}

export interface OutboxReads<T> {
  result: T
  /** Heap pages fetched (the visibility map's pages count with them). */
  heapPages: number
  /** Sequential scans started on the outbox. */
  seqScans: number
  /** Entries its indexes returned plus rows its sequential scans read: the rows a statement looked at. */
  rowsRead: number
  /**
   * Heap rows it looked at: those its index scans fetched (an index-only scan's rows on all-visible
   * pages are not) plus those its sequential scans read.
   */
  heapRows: number
}

const xactStats = (trx: Kysely<Database>) =>
  sql<{ pages: string; scans: string; rows: string; heap: string }>`
    select pg_stat_get_xact_blocks_fetched('mailer.email_outbox'::regclass) as pages,
           pg_stat_get_xact_tuples_returned('mailer.email_outbox'::regclass)
             + pg_stat_get_xact_tuples_fetched('mailer.email_outbox'::regclass)
             + (select coalesce(sum(pg_stat_get_xact_tuples_fetched(indexrelid)), 0)
                  from pg_index where indrelid = 'mailer.email_outbox'::regclass) as heap,
           pg_stat_get_xact_numscans('mailer.email_outbox'::regclass) as scans,
           pg_stat_get_xact_tuples_returned('mailer.email_outbox'::regclass)
             + (select coalesce(sum(pg_stat_get_xact_tuples_returned(indexrelid)), 0)
                  from pg_index where indrelid = 'mailer.email_outbox'::regclass) as rows`
    .execute(trx)
    .then((r) => ({
      pages: Number(r.rows[0]!.pages),
      scans: Number(r.rows[0]!.scans),
      rows: Number(r.rows[0]!.rows),
      heap: Number(r.rows[0]!.heap),
    }))

/**
 * Runs `act` in a transaction without parallel workers (whose reads the transaction's own
 * statistics do not see) and reports the outbox's heap reads it made; `dropIndex` first drops that
 * index (or those) inside the transaction. Rolled back either way, so every call finds the same rows.
 */
export async function outboxReadsOf<T>(
  db: Kysely<Database>,
  act: (trx: Transaction<Database>) => Promise<T>,
  o: { dropIndex?: string | readonly string[] } = {},
): Promise<OutboxReads<T>> {
  let out: OutboxReads<T> | undefined
  await db
    .transaction()
    .execute(async (trx) => {
      await sql`set local max_parallel_workers_per_gather = 0`.execute(trx)
      for (const index of [o.dropIndex ?? []].flat())
        await sql`drop index ${sql.table(index)}`.execute(trx)
      const before = await xactStats(trx)
      const result = await act(trx)
      const after = await xactStats(trx)
      out = {
        result,
        heapPages: after.pages - before.pages,
        seqScans: after.scans - before.scans,
        rowsRead: after.rows - before.rows,
        heapRows: after.heap - before.heap,
      }
      throw new Rollback()
    })
    .catch((e) => {
      if (!(e instanceof Rollback)) throw e
    })
  return out!
}

/** The outbox heap's size in pages. */
export const outboxHeapPages = async (pool: pg.Pool) =>
  Number(
    (
      await pool.query<{ pages: string }>(
        `select pg_relation_size('mailer.email_outbox') / current_setting('block_size')::int as pages`,
      )
    ).rows[0]!.pages,
  )
