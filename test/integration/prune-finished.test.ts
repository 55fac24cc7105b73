// deploy/prune-finished.sql, as psql runs it (its :'keep' bound as a parameter), against a migrated database.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { join } from 'node:path'
import { sql } from 'kysely'
import type pg from 'pg'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'
import { outboxHeapPages, outboxReadsOf } from '../support/outbox-reads.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const script = await Bun.file(join(import.meta.dir, '../../deploy/prune-finished.sql')).text()
// The statement after psql's guard, with its one variable (:'keep', a quoted literal) bound as $1.
const statement = script.slice(script.indexOf('with recursive')).replaceAll(":'keep'", '$1')

const t = useTestDb({ resetEach: true })

const prune = async (keep = '30 days', client: pg.Pool | pg.Client = t.pool) =>
  Number((await client.query<{ pruned: string }>(statement, [keep])).rows[0]!.pruned)

/** Puts row `id` in `status` as of `daysAgo` days ago, with one attempt in its history. */
async function finishedAgo(id: string, status: 'sent' | 'failed' | 'cancelled', daysAgo: number) {
  await t.pool.query(
    `update mailer.email_outbox
        set status = $2, attempts = 1, send_at = now() - make_interval(days => $3),
            created_at = now() - make_interval(days => $3),
            sent_at = case when $2 = 'sent' then now() - make_interval(days => $3) end,
            cancel_requested_at = case when $2 = 'cancelled' then now() - make_interval(days => $3) end
      where id = $1`,
    [id, status, daysAgo],
  )
  await t.pool.query(
    `insert into mailer.email_attempts (outbox_id, attempt, outcome, finished_at)
     values ($1, 1, $2, now() - make_interval(days => $3))`,
    [id, status, daysAgo],
  )
}

const ids = async () =>
  (await t.pool.query<{ id: string }>('select id from mailer.email_outbox order by id')).rows.map(
    (r) => r.id,
  )
const historyOf = async () =>
  (
    await t.pool.query<{ outbox_id: string }>(
      'select distinct outbox_id from mailer.email_attempts order by outbox_id',
    )
  ).rows.map((r) => r.outbox_id)

describe('deploy/prune-finished.sql', () => {
  test('deletes finished rows idle past the limit and their history; leaves the rest', async () => {
    const oldSent = await enqueue(t)
    const oldFailed = await enqueue(t)
    const oldCancelled = await enqueue(t)
    const recentSent = await enqueue(t)
    const oldPending = await enqueue(t)
    const retriedLately = await enqueue(t)
    await finishedAgo(oldSent, 'sent', 40)
    await finishedAgo(oldFailed, 'failed', 40)
    await finishedAgo(oldCancelled, 'cancelled', 40)
    await finishedAgo(recentSent, 'sent', 5)
    await t.pool.query(
      `update mailer.email_outbox set created_at = now() - interval '40 days' where id = $1`,
      [oldPending],
    )
    // Created long ago, but its last send was recent: idle by its send time, not its creation.
    await finishedAgo(retriedLately, 'failed', 40)
    await t.pool.query(
      `update mailer.email_outbox set send_at = now() - interval '2 days' where id = $1`,
      [retriedLately],
    )

    expect(await prune('30 days')).toBe(3)
    expect(await ids()).toEqual([recentSent, oldPending, retriedLately])
    expect(await historyOf()).toEqual([recentSent, retriedLately])
    expect(await prune('30 days')).toBe(0)
    expect(await prune('1 day')).toBe(2)
    expect(await ids()).toEqual([oldPending])
  })

  test('a row failed lately, long after it was written and due (behind a backlog), is kept', async () => {
    const id = await enqueue(t)
    await finishedAgo(id, 'failed', 40)
    // Its last attempt, the one that failed it, was yesterday.
    await t.pool.query(
      `update mailer.email_attempts set finished_at = now() - interval '1 day' where outbox_id = $1`,
      [id],
    )
    expect(await prune()).toBe(0)
    expect(await ids()).toEqual([id])
    await t.pool.query(
      `update mailer.email_attempts set finished_at = now() - interval '31 days' where outbox_id = $1`,
      [id],
    )
    expect(await prune()).toBe(1)
  })

  test('deletes at most 10,000 rows per run', async () => {
    await t.pool.query(
      `insert into mailer.email_outbox (message, status, attempts, send_at, sent_at, created_at)
       select '{"to":[{"address":"a@example.com"}],"subject":"s","text":"t"}'::jsonb, 'sent', 1,
              now() - interval '40 days', now() - interval '40 days', now() - interval '40 days'
         from generate_series(1, 10005)`,
    )
    expect(await prune()).toBe(10000)
    expect(await prune()).toBe(5)
    expect(await prune()).toBe(0)
  })

  test('skips a row another transaction holds; a retry committed there keeps it', async () => {
    const held = await enqueue(t)
    const free = await enqueue(t)
    await finishedAgo(held, 'failed', 40)
    await finishedAgo(free, 'failed', 40)
    // As a retry through the API would: the row is locked until that transaction ends.
    const other = await holdRowLocked(t.pool, held)
    try {
      expect(await prune()).toBe(1)
      expect(await ids()).toEqual([held])
      await other.client.query(
        `update mailer.email_outbox set status = 'pending', attempts = 0, send_at = now() where id = $1`,
        [held],
      )
      await other.end('commit')
      // Retried meanwhile: in play again, so never pruned.
      expect(await prune('0 seconds')).toBe(0)
      expect(await ids()).toEqual([held])
    } finally {
      await other.end('rollback')
    }
  })

  test('a row written within the limit is never pruned, whatever its send time', async () => {
    // Scheduled (sendAt) long before it was enqueued, and failed at once: idle since its creation.
    const early = await enqueue(t)
    await t.pool.query(
      `update mailer.email_outbox
          set status = 'failed', attempts = 1, send_at = now() - interval '400 days' where id = $1`,
      [early],
    )
    // Written after it but created long before (imported): the walk reaches past the early row.
    const imported = await enqueue(t)
    await finishedAgo(imported, 'sent', 40)
    expect(await prune('30 days')).toBe(1)
    expect(await ids()).toEqual([early])
  })

  test('a run with nothing due reads a few pages, not the kept rows; one with some, only those', async () => {
    // 30 rows idle for 40 days, then 20,000 sent within the last hour, then 30 old again (written
    // out of time order: e.g. imported with their own created_at).
    const fill = (n: number, ago: string) =>
      t.pool.query(
        `insert into mailer.email_outbox (message, status, attempts, send_at, sent_at, created_at)
         select '{"to":[{"address":"a@example.com"}],"subject":"s","text":"t"}'::jsonb, 'sent', 1,
                now() - $2::interval, now() - $2::interval, now() - $2::interval
           from generate_series(1, $1::int)`,
        [n, ago],
      )
    await fill(30, '40 days')
    await fill(20_000, '1 hour')
    await fill(30, '40 days')
    await t.pool.query('vacuum (analyze) mailer.email_outbox')
    const heap = await outboxHeapPages(t.pool)
    expect(heap).toBeGreaterThan(1000)
    const run = (keep: string) => (trx: Parameters<Parameters<typeof outboxReadsOf>[1]>[0]) =>
      sql
        .raw<{ pruned: string }>(statement.replaceAll('$1', `'${keep}'`))
        .execute(trx)
        .then((r) => Number(r.rows[0]!.pruned))
    const some = await outboxReadsOf(t.db, run('30 days'))
    // Heap fetches, not distinct pages: a probe per bisection step, a few per row deleted.
    expect(some.result).toBe(30)
    expect(some.heapPages).toBeLessThanOrEqual(200)
    expect(some.seqScans).toBe(0)
    const none = await outboxReadsOf(t.db, run('90 days'))
    expect(none.result).toBe(0)
    expect(none.heapPages).toBeLessThanOrEqual(30)
    expect(none.seqScans).toBe(0)
    // The rows written out of order wait until the rows before them are due too.
    expect(await prune('30 days')).toBe(30)
    expect(await prune('30 days')).toBe(0)
    expect(await prune('30 minutes')).toBe(10_000)
    expect(await prune('30 minutes')).toBe(10_000)
    expect(await prune('30 minutes')).toBe(30)
  })

  test("a pruned row's dedupe key enqueues a new row", async () => {
    const first = await enqueue(t, undefined, { dedupeKey: 'order-1' })
    expect(await enqueue(t, undefined, { dedupeKey: 'order-1' })).toBe(first)
    await finishedAgo(first, 'sent', 40)
    expect(await prune()).toBe(1)
    const second = await enqueue(t, undefined, { dedupeKey: 'order-1' })
    expect(second).not.toBe(first)
    expect(await ids()).toEqual([second])
  })
})
