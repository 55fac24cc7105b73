// Bulk cancel and retry in an outbox that keeps every row: they read the matching rows, not the table, and race settlements safely.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import type { Transaction } from 'kysely'
import pg from 'pg'
import type { Database } from '../../src/db/schema.ts'
import { cancelMatching } from '../../src/outbox/cancel.ts'
import { lowestMatching } from '../../src/outbox/candidate-ids.ts'
import { requeueMatching } from '../../src/outbox/requeue.ts'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { outboxHeapPages, outboxReadsOf } from '../support/outbox-reads.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const MESSAGE = `'{"to":[{"address":"a@example.com"}],"subject":"s","text":"t"}'::jsonb`
const SENT = 40_000

const t = useTestDb({ resetEach: true })

/** Bounded poll until a statement of this database waits for a row lock (the bulk cancel's update). */
async function untilWaitingForALock() {
  await pollUntil(
    async () => {
      const { rows } = await t.pool.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock'`,
      )
      return rows[0]!.n > 0 ? true : undefined
    },
    5_000,
    10,
  )
}

/** Inserts `n` rows in `status` (committed with its WAL flushed, so a vacuum can mark pages all-visible). */
async function insert(n: number, status: 'sent' | 'failed' | 'pending') {
  await t.pool.query(
    `begin;
     set local synchronous_commit = on;
     insert into mailer.email_outbox (message, status, sent_at, attempts)
     select ${MESSAGE}, '${status}', case when '${status}' = 'sent' then now() end, 1
       from generate_series(1, ${n});
     commit`,
  )
}

const heapPagesOf = <T>(act: (trx: Transaction<Database>) => Promise<T>) => outboxReadsOf(t.db, act)

describe('bulk actions in a large outbox', () => {
  test('a batch reads the rows in its statuses, not the sent ones before them', async () => {
    // An incident's failed rows, then a backlog of pending ones, after a long history of sent rows.
    await insert(SENT, 'sent')
    await insert(300, 'failed')
    await insert(SENT / 2, 'sent')
    await insert(2_000, 'pending')
    await t.pool.query('vacuum (analyze) mailer.email_outbox')
    const heap = await outboxHeapPages(t.pool)
    expect(heap).toBeGreaterThan(2_000)

    const retry = await heapPagesOf((trx) => requeueMatching(trx, {}, null, { limit: 50 }))
    expect(retry.result.items).toHaveLength(50)
    expect(retry.result.more).toBe(true)
    const cancel = await heapPagesOf((trx) => cancelMatching(trx, {}, null, { limit: 50 }))
    expect(cancel.result.items).toHaveLength(50)
    expect(cancel.result.items.every((i) => i.outcome === 'cancelled')).toBe(true)
    // The lowest ids of each: the first failed row and the first pending row.
    const first = async (status: string) =>
      String(
        (
          await t.pool.query<{ id: string }>(
            'select min(id) as id from mailer.email_outbox where status = $1',
            [status],
          )
        ).rows[0]!.id,
      )
    expect(retry.result.items[0]!.id).toBe(await first('failed'))
    expect(cancel.result.items[0]!.id).toBe(await first('pending'))
    // Walking the primary key to them would read about 2/3 and all of the heap.
    expect(retry.heapPages).toBeLessThan(heap / 10)
    expect(cancel.heapPages).toBeLessThan(heap / 10)
  })

  test('the next batch is found through the indexes even where Postgres would walk the primary key', async () => {
    // Pending rows at the end of the table: ordered by the bare id, "the lowest 50 pending" is
    // planned as a walk of the primary key expecting one pending row in 20, and reads every page.
    await insert(SENT, 'sent')
    await insert(300, 'failed')
    await insert(2_000, 'pending')
    await t.pool.query('vacuum (analyze) mailer.email_outbox')
    for (const status of ['pending', 'failed'] as const) {
      const next = await heapPagesOf((trx) => lowestMatching(trx, [status], (eb) => eb.and([]), 50))
      const lowest = await t.pool.query<{ id: string }>(
        'select id from mailer.email_outbox where status = $1 order by id limit 50',
        [status],
      )
      expect(next.result).toEqual(lowest.rows.map((r) => String(r.id)))
      // Index-only: the visibility map's page at most (2,108 pages with the pending rows' ids bare).
      expect(next.heapPages).toBeLessThanOrEqual(2)
    }
  })

  test('a row settled while a bulk cancel waits for it is skipped, and the cancel goes on', async () => {
    await insert(3, 'pending')
    const ids = (
      await t.pool.query<{ id: string }>('select id from mailer.email_outbox order by id')
    ).rows.map((r) => String(r.id))
    // A worker holds the first row's lock, on its way to settling it as sent.
    const worker = new pg.Client({ connectionString: t.url })
    await worker.connect()
    try {
      await worker.query('begin')
      await worker.query(
        `update mailer.email_outbox set status = 'sent', sent_at = now() where id = $1`,
        [ids[0]],
      )
      const cancelling = cancelMatching(t.db, {}, null, { limit: 2 })
      await untilWaitingForALock()
      await worker.query('commit')
      const first = await cancelling
      expect(first).toEqual({ items: [{ id: ids[1]!, outcome: 'cancelled' }], more: true })
      const second = await cancelMatching(t.db, {}, null, { limit: 2 })
      expect(second).toEqual({ items: [{ id: ids[2]!, outcome: 'cancelled' }], more: false })
      const { rows } = await t.pool.query<{ status: string }>(
        'select status from mailer.email_outbox order by id',
      )
      expect(rows.map((r) => r.status)).toEqual(['sent', 'cancelled', 'cancelled'])
    } finally {
      await worker.end()
    }
  })

  test('a row whose send starts while a bulk cancel waits for it is left alone and not stamped', async () => {
    await insert(2, 'pending')
    const ids = (
      await t.pool.query<{ id: string }>('select id from mailer.email_outbox order by id')
    ).rows.map((r) => String(r.id))
    await t.pool.query(
      `update mailer.email_outbox set status = 'sending', lease_token = gen_random_uuid(),
         lease_expires_at = now() + interval '1 minute' where id = any($1::bigint[])`,
      [ids],
    )
    // A worker holds the first row's lock, recording that its send has begun.
    const worker = new pg.Client({ connectionString: t.url })
    await worker.connect()
    try {
      await worker.query('begin')
      await worker.query('update mailer.email_outbox set send_started_at = now() where id = $1', [
        ids[0],
      ])
      const cancelling = cancelMatching(t.db, {}, null, { limit: 2 })
      await untilWaitingForALock()
      await worker.query('commit')
      expect(await cancelling).toEqual({
        items: [{ id: ids[1]!, outcome: 'cancel_requested' }],
        more: true,
      })
      const { rows } = await t.pool.query<{ requested: boolean }>(
        'select cancel_requested_at is not null as requested from mailer.email_outbox order by id',
      )
      expect(rows.map((r) => r.requested)).toEqual([false, true])
    } finally {
      await worker.end()
    }
  })
})
