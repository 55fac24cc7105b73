// A send Graph took and answered 504 (a throttle: given back uncounted, its mark kept): every entry that only looks it up, or names it, numbers its attempt, not the row's attempts below it.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { cancelOutbox } from '../../src/outbox/cancel.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import { reclaimExpired } from '../../src/outbox/reclaim.ts'
import { useTestDb } from '../support/db.ts'
import { endedAfterEach } from '../support/ended-after-each.ts'
import { attemptsOf, enqueue, rowOf } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { type FakeGraph, startFakeGraph } from '../support/fake-graph.ts'
import { type GraphWorkerOptions, graphWorker } from '../support/graph-worker.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const { engines, closing } = endedAfterEach()
const MAIL_FROM = 'sender@example.com'

function worker(fake: FakeGraph, o: Partial<GraphWorkerOptions> & { workerId: string }) {
  const engine = graphWorker(t, fake, { mailFrom: MAIL_FROM, graceSeconds: 3600, ...o })
  engines.push(engine)
  return engine
}

/**
 * `n` rows whose one send Graph took and answered with a gateway's 504 (given back uncounted,
 * attempts 0, the mark kept), each then looked up too early (the message unfiled, an hour's grace):
 * pending, due in an hour, the worker stopped. Their history: the 504 and the wait, both numbered 1.
 */
async function afterGateway504(n: number) {
  const fake = await startFakeGraph({ clientSecret: 'right', concurrencyLimit: 1000 })
  closing.push(() => fake.stop())
  fake.setFaults({ sendMail: Array(n).fill('accept_then_504'), fileLate: true })
  const first = worker(fake, { workerId: 'sender' })
  const ids: string[] = []
  for (let i = 0; i < n; i++) ids.push(await enqueue(t))
  await first.start()
  const waiting = async (id: string) =>
    (await attemptsOf(t, id, 'error_code')).some(
      (h: { error_code: string }) => h.error_code === 'lookup_too_early',
    )
  await pollUntil(
    async () => ((await Promise.all(ids.map(waiting))).every(Boolean) ? true : undefined),
    30_000,
  )
  await first.stop()
  for (const id of ids) {
    const row = await rowOf(t, id)
    expect([row.status, row.attempts, row.send_started_at !== null]).toEqual(['pending', 0, true])
    expect(await attemptsOf(t, id, 'attempt, outcome, http_status')).toEqual([
      { attempt: 1, outcome: 'throttled', http_status: 504 },
      { attempt: 1, outcome: 'throttled', http_status: null },
    ])
  }
  expect(fake.accepted).toHaveLength(n)
  return { fake, ids }
}

/** Waits for the row to end `status`. */
const endsAs = (id: string, status: string) =>
  pollUntil(async () => ((await rowOf(t, id)).status === status ? rowOf(t, id) : undefined), 30_000)

/** The row's attempts and its history after the 504 and its first lookup's wait. */
const laterEntries = async (id: string) => ({
  attempts: (await rowOf(t, id)).attempts,
  history: (await attemptsOf(t, id, 'attempt, outcome, error_code')).slice(2),
})

/** The message filed, a worker with lookups on looks the send up: found, `id` ends sent, its entry numbered 1. */
async function foundAndSent(fake: FakeGraph, id: string) {
  fake.fileLateMessages()
  const on = worker(fake, { workerId: 'looks', graceSeconds: 1 })
  await on.start()
  await endsAs(id, 'sent')
  expect(await laterEntries(id)).toEqual({
    attempts: 0,
    history: [{ attempt: 1, outcome: 'sent', error_code: null }],
  })
  await on.stop()
}

const claimOne = async (id: string) => {
  const { leases } = await claimBatch(t.db, {
    limit: 1,
    workerId: 'stops',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
  })
  expect(leases.map((l) => l.id)).toEqual([id])
  await t.pool.query(
    `update mailer.email_outbox set lease_expires_at = now() - interval '1 second' where id = $1`,
    [id],
  )
}

test("a cancel's lookup of the 504's send, lookups off (cancelled, naming it), on (found: sent) or its worker stopped (reclaimed): each entry numbered 1, as the 504's, no attempt counted", async () => {
  const { fake, ids } = await afterGateway504(3)
  const [stopped, unlooked, found] = ids as [string, string, string]

  // Lookups off: cancelled at once, naming the 504's send (the soak's seed 5003).
  expect((await cancelOutbox(t.db, unlooked, null)).outcome).toBe('cancel_requested')
  const off = worker(fake, { workerId: 'unlooked', lookups: false })
  await off.start()
  expect((await endsAs(unlooked, 'cancelled')).last_error).toBe(
    'cancelled; an interrupted send may have delivered it',
  )
  await off.stop()
  expect(await laterEntries(unlooked)).toEqual({
    attempts: 0,
    history: [{ attempt: 1, outcome: 'cancelled', error_code: 'cancelled' }],
  })

  // Lookups on, the message filed: found, sent, the cancel too late.
  expect((await cancelOutbox(t.db, found, null)).outcome).toBe('cancel_requested')
  await foundAndSent(fake, found)

  // Its cancel asked (202: due now), its worker stops while it looks the send up: the lease
  // reclaimed with lookups on (left to be looked up again), then off (cancelled, delivery unknown).
  expect((await cancelOutbox(t.db, stopped, null)).outcome).toBe('cancel_requested')
  await claimOne(stopped)
  await reclaimExpired(t.db, { defaultMaxAttempts: 3, lookups: true })
  expect(await laterEntries(stopped)).toEqual({
    attempts: 0,
    history: [{ attempt: 1, outcome: 'lease_expired', error_code: 'lease_expired' }],
  })
  await claimOne(stopped)
  await reclaimExpired(t.db, { defaultMaxAttempts: 3, lookups: false })
  await endsAs(stopped, 'cancelled')
  expect(await laterEntries(stopped)).toEqual({
    attempts: 0,
    history: [
      { attempt: 1, outcome: 'lease_expired', error_code: 'lease_expired' },
      { attempt: 1, outcome: 'cancelled', error_code: 'cancelled' },
    ],
  })

  expect(fake.requests.filter((q) => q.kind === 'sendMail')).toHaveLength(3)
})

test("past its expiresAt, the 504's send swept unlooked (expired, naming it), looked up by a claim (found: sent) or by one whose worker stopped (reclaimed): each entry numbered 1, no attempt counted", async () => {
  const { fake, ids } = await afterGateway504(3)
  const [swept, found, stopped] = ids as [string, string, string]
  // Its expiresAt passed while it waited (a hand's update: a marked row may be due past it, 0160).
  const expire = (id: string) =>
    t.pool.query(
      `update mailer.email_outbox set expires_at = now() - interval '1 second', send_at = now() - interval '1 second' where id = $1`,
      [id],
    )

  // The expiry sweep, lookups off: failed expired, naming the send; the swept row's attempt too.
  await expire(swept)
  const { swept: sweptRows } = await reclaimExpired(t.db, {
    defaultMaxAttempts: 3,
    sweep: { workerId: 'sweeper', limit: 500, lookups: false },
  })
  expect(sweptRows.map((r) => [r.id, r.status, r.attempt])).toEqual([[swept, 'failed', 1]])
  expect(await laterEntries(swept)).toEqual({
    attempts: 0,
    history: [{ attempt: 1, outcome: 'expired', error_code: 'expired' }],
  })

  // A claim past its expiresAt whose worker stops as it looks the send up: the reclaim (lookups
  // on) leaves it to be looked up again, counting none (sql/0162 notes the claim's kind).
  await expire(stopped)
  await claimOne(stopped)
  await reclaimExpired(t.db, { defaultMaxAttempts: 3, lookups: true })
  expect(await laterEntries(stopped)).toEqual({
    attempts: 0,
    history: [{ attempt: 1, outcome: 'lease_expired', error_code: 'lease_expired' }],
  })

  // A claim past its expiresAt, lookups on: found in the mailbox, sent.
  await expire(found)
  await foundAndSent(fake, found)
})
