// Bulk cancel and retry in an outbox that keeps every row: they read the matching rows, not the table, and race settlements safely.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import type { Transaction } from 'kysely'
import pg from 'pg'
import { openDb } from '../../src/db/open.ts'
import type { Database } from '../../src/db/schema.ts'
import { silentLogger } from '../../src/log.ts'
import { cancelMatching } from '../../src/outbox/bulk-cancel.ts'
import { requeueMatching } from '../../src/outbox/bulk-requeue.ts'
import { lowestMatching } from '../../src/outbox/candidate-ids.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import { settleLeases } from '../../src/outbox/settle.ts'
import { vacuumAllVisible } from '../support/all-visible-vacuum.ts'
import { useTestDb } from '../support/db.ts'
import { untilLockWaits } from '../support/lock-waits.ts'
import { outboxHeapPages, outboxReadsOf } from '../support/outbox-reads.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const MESSAGE = `'{"to":[{"address":"a@example.com"}],"subject":"s","text":"t"}'::jsonb`
const SENT = 40_000

const t = useTestDb({ resetEach: true })

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
    await vacuumAllVisible(t.pool)
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
    await vacuumAllVisible(t.pool)
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
      await untilLockWaits(t.pool)
      await worker.query('commit')
      const first = await cancelling
      expect(first).toEqual({
        items: [{ id: ids[1]!, outcome: 'cancelled' }],
        more: true,
        cancelled: 1,
        cancelRequested: 0,
        last: ids[1]!,
      })
      const second = await cancelMatching(t.db, {}, null, { limit: 2 })
      expect(second).toEqual({
        items: [{ id: ids[2]!, outcome: 'cancelled' }],
        more: false,
        cancelled: 1,
        cancelRequested: 0,
        last: ids[2]!,
      })
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
      await untilLockWaits(t.pool)
      await worker.query('commit')
      expect(await cancelling).toEqual({
        items: [{ id: ids[1]!, outcome: 'cancel_requested' }],
        more: true,
        cancelled: 0,
        cancelRequested: 1,
        last: ids[1]!,
      })
      const { rows } = await t.pool.query<{ requested: boolean }>(
        'select cancel_requested_at is not null as requested from mailer.email_outbox order by id',
      )
      expect(rows.map((r) => r.requested)).toEqual([false, true])
    } finally {
      await worker.end()
    }
  })

  /**
   * Rounds of a bulk cancel racing a worker's settlement of the same claimed rows; returns the
   * deadlocks. `settings`: planner settings for the racing sessions; `descendingIds`: rows stored
   * in descending id order; `finishedOrder`: the settlement's batch order.
   */
  async function deadlocksOfRaces(o: {
    rounds: number
    rows: number
    settings: string
    descendingIds: boolean
    finishedOrder: 'asc' | 'desc'
  }): Promise<string[]> {
    const name = new URL(t.url).pathname.slice(1)
    // A deadlock is found after deadlock_timeout (1 s by default): sooner, for sessions opened now.
    await t.pool.query(`alter database ${name} set deadlock_timeout = '20ms'`)
    if (o.settings) await t.pool.query(`alter database ${name} set ${o.settings}`)
    const h = openDb({ name: 'race', url: t.url, log: silentLogger, maxConnections: 4 })
    const deadlocks: string[] = []
    const counted = <T>(who: string, p: Promise<T>) =>
      p.catch((e: unknown) => {
        if ((e as { code?: string }).code !== '40P01') throw e
        deadlocks.push(who)
      })
    try {
      for (let round = 0; round < o.rounds; round++) {
        await t.pool.query('delete from mailer.email_attempts; delete from mailer.email_outbox')
        await t.pool.query(
          `insert into mailer.email_outbox (id, message) overriding system value
           select g, ${MESSAGE} from generate_series(1, ${o.rows}) g
            order by g ${o.descendingIds ? 'desc' : 'asc'}`,
        )
        // Claimed, not started (as with Graph): a bulk cancel records its request on each.
        const { leases } = await claimBatch(h.db, {
          limit: o.rows,
          workerId: 'w1',
          leaseSeconds: 60,
          defaultMaxAttempts: 3,
        })
        expect(leases).toHaveLength(o.rows)
        // Settled in the order the sends finished: given back uncounted.
        const items = leases
          .map((l) => ({
            id: l.id,
            token: l.token,
            settlement: { kind: 'released' as const },
            startedAt: null,
          }))
          .sort((a, b) => (Number(a.id) - Number(b.id)) * (o.finishedOrder === 'asc' ? 1 : -1))
        await Promise.all([
          counted(
            'settle',
            settleLeases(h.db, items, {
              workerId: 'w1',
              defaultMaxAttempts: 3,
              throttleDeadlineSeconds: 60,
            }),
          ),
          counted('cancel', cancelMatching(h.db, {}, null, { limit: o.rows })),
        ])
      }
    } finally {
      await h.close()
      await t.pool.query(`alter database ${name} reset all`)
    }
    return deadlocks
  }

  // 60 rounds each (a table filled, claimed, settled and cancelled at once): 14 s and 24 s of them
  // beside a CPU hog on a loaded 2-core machine, against the file's 30 s.
  test('bulk cancels racing settlements over the same rows never deadlock: a batch settled last first', async () => {
    // The plans Postgres picks here: the cancel walks the primary key, the settlement its batch.
    expect(
      await deadlocksOfRaces({
        rounds: 60,
        rows: 200,
        settings: '',
        descendingIds: false,
        finishedOrder: 'desc',
      }),
    ).toEqual([])
  }, 120_000)

  test('nor when the cancel reads its rows in table order (a sequential scan), not id order', async () => {
    expect(
      await deadlocksOfRaces({
        rounds: 60,
        rows: 300,
        settings: 'enable_indexscan = off',
        descendingIds: true,
        finishedOrder: 'asc',
      }),
    ).toEqual([])
  }, 120_000)
})
