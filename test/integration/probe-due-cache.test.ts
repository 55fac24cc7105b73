// MAIL_FROM's owed probe's cached due time (mailbox_pacing.probe_due_at): a row that comes due sooner, or the cached row gone, is seen by the next claim.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import { useTestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const MAIL_FROM = 'sender@example.com'
const HOLD_MS = 5_000
const claim = () =>
  claimBatch(t.db, {
    limit: 10,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
    markStarted: false,
    pausedSender: { key: MAIL_FROM, holdMs: HOLD_MS },
  })

/** A row of MAIL_FROM's (no from), or naming `from`, due `inSeconds` from now in database time. */
const enqueueIn = async (inSeconds: number, from?: string) =>
  (
    await t.pool.query<{ id: string }>(
      `select mailer.enqueue_email(jsonb_build_object('to', 'rcpt@example.com', 'subject', 'Hello', 'text', 'Hi')
                                     || coalesce(jsonb_build_object('from', $2::text), '{}'),
                                   jsonb_build_object('sendAt', now() + make_interval(secs => $1::float8)))::text as id`,
      [inSeconds, from ?? null],
    )
  ).rows[0]!.id

/** MAIL_FROM's pause over, its probe owed (as oweProbe left it, the pause's end passed). */
const probeOwed = () =>
  t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, probe_owed) values ($1, now() - interval '1 minute', true)`,
    [MAIL_FROM],
  )

/** The first claim searches for MAIL_FROM's first row, 120 s off, and keeps its due time. */
async function cachedAt120s() {
  const far = await enqueueIn(120)
  await probeOwed()
  const first = await claim()
  expect(first.probeInMs).toBeGreaterThan(100_000)
  const kept = await t.pool.query(
    'select probe_due_at from mailer.mailbox_pacing where mailbox = $1',
    [MAIL_FROM],
  )
  expect(kept.rows[0].probe_due_at).not.toBeNull()
  return far
}

test('a row of MAIL_FROM’s enqueued due sooner than the cached one: the next claim waits for it', async () => {
  await cachedAt120s()
  await enqueueIn(3)
  const c = await claim()
  expect(c.probeInMs).toBeLessThan(10_000)
  expect(c.nextDueInMs).toBeLessThan(10_000)
})

test('the cached row cancelled, nothing else of MAIL_FROM’s pending: owed no more, a row naming MAIL_FROM’s address goes', async () => {
  const far = await cachedAt120s()
  const named = await enqueueIn(-1, MAIL_FROM)
  await t.pool.query(
    `update mailer.email_outbox set status = 'cancelled', cancel_requested_at = now() where id = $1`,
    [far],
  )
  const c = await claim()
  expect([c.probeInMs ?? null, c.leases.map((l) => l.id)]).toEqual([null, [named]])
  const owed = await t.pool.query(
    'select probe_owed from mailer.mailbox_pacing where mailbox = $1',
    [MAIL_FROM],
  )
  expect(owed.rows).toEqual([{ probe_owed: false }])
})

test('the cached row cancelled, a later one pending: the claim waits for the later one', async () => {
  const far = await cachedAt120s()
  await enqueueIn(300)
  await t.pool.query(
    `update mailer.email_outbox set status = 'cancelled', cancel_requested_at = now() where id = $1`,
    [far],
  )
  const c = await claim()
  expect(c.probeInMs).toBeGreaterThan(200_000)
})

test('the cached row moved later by hand: the claim waits for MAIL_FROM’s first row, not the moved one’s old time', async () => {
  const far = await cachedAt120s()
  await enqueueIn(300)
  await t.pool.query(
    `update mailer.email_outbox set send_at = now() + interval '1 hour' where id = $1`,
    [far],
  )
  const c = await claim()
  expect(c.probeInMs).toBeGreaterThan(200_000)
  expect(c.probeInMs).toBeLessThan(400_000)
})

test('the pause lifted early by hand (next_at = now()): the claim probes MAIL_FROM’s first row when it is due', async () => {
  await enqueueIn(3)
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, probe_owed) values ($1, now() + interval '5 minutes', true)`,
    [MAIL_FROM],
  )
  expect((await claim()).pausedMs).toBeGreaterThan(HOLD_MS)
  await t.pool.query('update mailer.mailbox_pacing set next_at = now() where mailbox = $1', [
    MAIL_FROM,
  ])
  const c = await claim()
  expect([c.pausedMs, c.probeInMs! < 10_000]).toEqual([null, true])
})

test('the pacing row deleted by hand after a due time was kept: the claim reads MAIL_FROM’s rows afresh', async () => {
  await cachedAt120s()
  await t.pool.query('delete from mailer.mailbox_pacing where mailbox = $1', [MAIL_FROM])
  await enqueueIn(3)
  const c = await claim()
  expect([c.pausedMs, c.probeInMs! < 10_000]).toEqual([null, true])
})

test('a row enqueued in a transaction open while a claim searched (and kept a later time) is waited for once committed; the claim waits on no lock of it', async () => {
  await enqueueIn(120)
  await probeOwed()
  const app = await t.pool.connect()
  try {
    await app.query('begin')
    await app.query(
      `select mailer.enqueue_email('{"to":"rcpt@example.com","subject":"Hello","text":"Hi"}'::jsonb,
                                   jsonb_build_object('sendAt', now() + interval '3 seconds'))`,
    )
    // The search cannot see the row: it keeps 120 s.
    expect((await claim()).probeInMs).toBeGreaterThan(100_000)
    await app.query('commit')
  } finally {
    app.release()
  }
  const c = await claim()
  expect(c.probeInMs).toBeLessThan(10_000)
  expect(c.nextDueInMs).toBeLessThan(10_000)
})
