// MAIL_FROM's owed probe's kept due time against the API's moves of a row: a retry or bulk retry that makes a row of MAIL_FROM's due sooner is seen by the next claim.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { requeueMatching } from '../../src/outbox/bulk-requeue.ts'
import { cancelOutbox } from '../../src/outbox/cancel.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import { requeueOutbox } from '../../src/outbox/requeue.ts'
import { useTestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const MAIL_FROM = 'sender@example.com'
const claim = () =>
  claimBatch(t.db, {
    limit: 10,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
    markStarted: false,
    pausedSender: { key: MAIL_FROM, holdMs: 5_000 },
  })

/** A row of MAIL_FROM's (no from), due `inSeconds` from now in database time. */
const enqueueIn = async (inSeconds: number) =>
  (
    await t.pool.query<{ id: string }>(
      `select mailer.enqueue_email('{"to":"rcpt@example.com","subject":"Hello","text":"Hi"}'::jsonb,
                                   jsonb_build_object('sendAt', now() + make_interval(secs => $1::float8)))::text as id`,
      [inSeconds],
    )
  ).rows[0]!.id

/**
 * A row of MAIL_FROM's due in 20 s, cancelled through the API before the pause; then the pause
 * over, its probe owed, and a claim that kept MAIL_FROM's first pending row's time, 120 s off.
 */
async function cancelledSoonerThanKept() {
  const soon = await enqueueIn(20)
  await cancelOutbox(t.db, soon, null)
  await enqueueIn(120)
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, probe_owed) values ($1, now() - interval '1 minute', true)`,
    [MAIL_FROM],
  )
  expect((await claim()).probeInMs).toBeGreaterThan(100_000)
  return soon
}

test('a row of MAIL_FROM’s retried through the API (due at its sendAt, sooner than the kept time): the next claim waits for it', async () => {
  const soon = await cancelledSoonerThanKept()
  await requeueOutbox(t.db, soon, null)
  const c = await claim()
  expect(c.probeInMs).toBeLessThan(30_000)
  expect(c.nextDueInMs).toBeLessThan(30_000)
})

test('a row of MAIL_FROM’s requeued by a bulk retry, sooner than the kept time: the next claim waits for it', async () => {
  const soon = await cancelledSoonerThanKept()
  const r = await requeueMatching(t.db, { ids: [soon] }, null, { limit: 10 })
  expect(r.items).toEqual([{ id: soon, outcome: 'requeued' }])
  const c = await claim()
  expect(c.probeInMs).toBeLessThan(30_000)
  expect(c.nextDueInMs).toBeLessThan(30_000)
})

test('no probe owed: a retry writes no hint (the claims read none)', async () => {
  const soon = await enqueueIn(20)
  await cancelOutbox(t.db, soon, null)
  await requeueOutbox(t.db, soon, null)
  await cancelOutbox(t.db, soon, null)
  expect((await requeueMatching(t.db, { ids: [soon] }, null, { limit: 10 })).items).toHaveLength(1)
  const hints = await t.pool.query('select count(*)::int as n from mailer.probe_due_hints')
  expect([
    (await t.pool.query('select status from mailer.email_outbox where id = $1', [soon])).rows[0]
      .status,
    hints.rows[0].n,
  ]).toEqual(['pending', 0])
})
