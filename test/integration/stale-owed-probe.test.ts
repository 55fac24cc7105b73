// A pause-end probe owed for a mailbox no live worker sends from (MAIL_FROM changed by a deploy) is cleared by a worker's reclaim, and with it the due hints it kept writing.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { useTestDb } from '../support/db.ts'
import type { TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { startFakeGraph } from '../support/fake-graph.ts'
import { useGraphPerTest } from '../support/graph-per-test.ts'
import { graphWorker } from '../support/graph-worker.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const OLD = 'old-sender@example.com'
const NEW = 'new-sender@example.com'

const g = useGraphPerTest()

/** A Graph worker of `mailFrom`, started, its first reclaim done (its loop has turned). */
async function startWorker(id: string, mailFrom: string, leaseSeconds = 5): Promise<TestEngine> {
  g.fake ??= await startFakeGraph({ clientSecret: 'right', mailboxes: [OLD, NEW] })
  const e = graphWorker(t, g.fake, { workerId: id, mailFrom, graceSeconds: 30, leaseSeconds })
  g.engines.push(e)
  await e.start()
  await pollUntil(async () => (e.drainer.status().lastLoopAt !== null ? true : undefined))
  return e
}

/** OLD's pause over and its probe owed, as a worker of OLD's left it. */
const oldProbeOwed = () =>
  t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, probe_owed) values ($1, now() - interval '1 minute', true)`,
    [OLD],
  )

const oldOwed = async () =>
  (
    await t.pool.query<{ probe_owed: boolean }>(
      'select probe_owed from mailer.mailbox_pacing where mailbox = $1',
      [OLD],
    )
  ).rows[0]?.probe_owed

/** `n` rows of MAIL_FROM's (no from) scheduled `ahead` (an hour when not given); then the hints' count. */
async function laterRows(n: number, ahead = '1 hour'): Promise<number> {
  await t.pool.query(
    `select mailer.enqueue_email('{"to":"rcpt@example.com","subject":"Hello","text":"Hi"}'::jsonb,
                                 jsonb_build_object('sendAt', now() + $2::interval))
       from generate_series(1, $1::int)`,
    [n, ahead],
  )
  const r = await t.pool.query('select count(*)::int as n from mailer.probe_due_hints')
  return r.rows[0].n
}

/**
 * Returns once a claim of OLD's worker has searched for its first row and kept that row's time
 * (probe_due_at): the same statement deleted the hints at or past it (sql/0162), which it may do
 * to any hint committed before it, so hints counted before this are not yet its to keep.
 */
async function oldSearched(): Promise<void> {
  await pollUntil(async () => {
    const r = await t.pool.query<{ kept: boolean }>(
      'select probe_due_at is not null as kept from mailer.mailbox_pacing where mailbox = $1',
      [OLD],
    )
    return r.rows[0]?.kept === true ? true : undefined
  }, 30_000)
}

/**
 * Returns once a reclaim of 'new-worker' (its beat rides on it) has begun after the changes
 * committed before the call, and the moment (database time) before it began.
 */
async function newWorkerReclaimed(): Promise<Date> {
  const marked = (await t.pool.query<{ at: Date }>('select clock_timestamp() as at')).rows[0]!.at
  await pollUntil(async () => {
    const r = await t.pool.query<{ n: number }>(
      `select count(*)::int as n from mailer.workers
        where id = 'new-worker' and last_heartbeat_at > $1`,
      [marked],
    )
    return r.rows[0]!.n === 1 ? true : undefined
  }, 30_000)
  return marked
}

test('MAIL_FROM changed while a probe is owed for the old mailbox: a worker of the new one clears it at its start, and rows scheduled later add no hint', async () => {
  await oldProbeOwed()
  await startWorker('new-worker', NEW)
  const hints = [await laterRows(100), await laterRows(100), await laterRows(100)]
  expect({ owed: await oldOwed(), hints }).toEqual({ owed: false, hints: [0, 0, 0] })
})

test('a rolling deploy: the old MAIL_FROM’s worker still live keeps its probe owed; once it stops, a reclaim of the new one clears it and the hints', async () => {
  await oldProbeOwed()
  // A row of MAIL_FROM's pending: the old worker waits for it to probe (owed still).
  await laterRows(1, '2 hours')
  const old = await startWorker('old-worker', OLD)
  // Its loop turned, its first claim may still be under way: the hints are written after its
  // search, as rows sooner than the one it keeps, so they are hints its waiting claim reads.
  await oldSearched()
  await startWorker('new-worker', NEW)
  expect([await oldOwed(), (await laterRows(100)) >= 100]).toEqual([true, true])
  // Hints already past are read by no claim: a reclaim deletes them, the probe still owed.
  await t.pool.query(
    `insert into mailer.probe_due_hints (send_at) select now() - interval '1 minute' from generate_series(1, 5)`,
  )
  await pollUntil(async () => {
    const r = await t.pool.query(
      'select count(*)::int as n from mailer.probe_due_hints where send_at <= now()',
    )
    return r.rows[0].n === 0 ? true : undefined
  }, 30_000)
  expect([await oldOwed(), (await laterRows(0)) >= 100]).toEqual([true, true])
  await old.stop()
  g.engines.splice(g.engines.indexOf(old), 1)
  await pollUntil(async () => ((await oldOwed()) === false ? true : undefined), 30_000)
  expect(await laterRows(0)).toBe(0)
})

test('a rolling deploy that shortens LEASE_SECONDS: the old MAIL_FROM’s worker, idle between its beats (one per its longer lease), keeps its probe owed', async () => {
  await oldProbeOwed()
  await laterRows(1)
  // Its lease 120 s: idle, it beats once per 120 s, live within 240 s; the new worker's lease is 5 s.
  await startWorker('old-worker', OLD, 120)
  await startWorker('new-worker', NEW)
  // Its last beat 30 s ago, as it is between two (its next reclaim is 120 s after its start).
  await t.pool.query(
    `update mailer.workers set last_heartbeat_at = now() - interval '30 seconds' where id = 'old-worker'`,
  )
  const marked = await newWorkerReclaimed()
  const oldBeat = await t.pool.query<{ silent: boolean }>(
    `select last_heartbeat_at < $1 as silent from mailer.workers where id = 'old-worker'`,
    [marked],
  )
  expect({ oldStillSilent: oldBeat.rows[0]?.silent, owed: await oldOwed() }).toEqual({
    oldStillSilent: true,
    owed: true,
  })
})

test('a live entry of an older binary (its MAIL_FROM and its lease not noted) keeps every owed probe while it may still beat (two of the longest lease); silent past that, it keeps none', async () => {
  await oldProbeOwed()
  await t.pool.query(
    `insert into mailer.workers (id, host, pid, version) values ('older:1:abcdef', 'older', 1, '0.9.0')`,
  )
  await startWorker('new-worker', NEW)
  expect(await oldOwed()).toBe(true)
  // Silent a minute, twelve of the new worker's leases: its own lease may be an hour.
  await t.pool.query(
    `update mailer.workers set last_heartbeat_at = now() - interval '1 minute' where id = 'older:1:abcdef'`,
  )
  await newWorkerReclaimed()
  expect(await oldOwed()).toBe(true)
  await t.pool.query(
    `update mailer.workers set last_heartbeat_at = now() - interval '2 hours 1 minute' where id = 'older:1:abcdef'`,
  )
  await pollUntil(async () => ((await oldOwed()) === false ? true : undefined), 30_000)
})
