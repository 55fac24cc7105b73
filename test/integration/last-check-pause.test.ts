// The last check reads its mailbox's pause in the same statement: one that stands holds the send back for its remaining time, one that has ended holds nothing.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import { ENDLESS_PAUSE_RECHECK_MS } from '../../src/outbox/endless-pause.ts'
import { startSends } from '../../src/outbox/start-send.ts'
import { claimAsW1 } from '../support/claim-as-w1.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

test('a pause that stands holds its row back for what is left of it; one that ended holds nothing', async () => {
  const held = await enqueue(t)
  const free = await enqueue(t)
  const { leases } = await claimBatch(t.db, {
    limit: 2,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
  })
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at)
     values ('paused@example.com', now() + interval '20 seconds'),
            ('over@example.com', now() - interval '1 second')`,
  )
  const mailbox = (id: string) => (id === held ? 'paused@example.com' : 'over@example.com')
  // What is left of the pause in database time, read just before and just after the last check:
  // its answer lies between, however long the test took to get there.
  const left = async () =>
    (
      await t.pool.query<{ ms: number }>(
        `select (extract(epoch from next_at - now()) * 1000)::float8 as ms
           from mailer.mailbox_pacing where mailbox = 'paused@example.com'`,
      )
    ).rows[0]!.ms
  const before = await left()
  const r = await startSends(
    t.db,
    leases.map((l) => ({ id: l.id, token: l.token, mailbox: mailbox(l.id) })),
  )
  const after = await left()
  expect([...r.started]).toEqual([free])
  expect([...r.paused.keys()]).toEqual([held])
  expect(after).toBeGreaterThan(0)
  expect(r.paused.get(held)).toBeGreaterThanOrEqual(after)
  expect(r.paused.get(held)).toBeLessThanOrEqual(before)
})

test('with no pacing in force, a throttle within a pacing turn holds the row until it ends; a pause lifted by hand lifts it', async () => {
  const ids = [await enqueue(t), await enqueue(t), await enqueue(t)]
  const leases = await claimAsW1(t.db, { limit: 3, markStarted: false })
  // A paced worker's turn (10 s), a throttle of 20 s within it; the same, lifted by hand (next_at
  // moved back before it, README); one over. The newest worker's rate is 0.
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval, throttled_until)
     values ('pacing rate', now(), interval '0', null),
            ('throttled@example.com', now() + interval '30 seconds', interval '40 seconds', now() + interval '20 seconds'),
            ('lifted@example.com', now(), interval '40 seconds', now() + interval '20 seconds'),
            ('over@example.com', now() + interval '30 seconds', interval '40 seconds', now() - interval '1 second')`,
  )
  const boxes = ['throttled@example.com', 'lifted@example.com', 'over@example.com']
  const mailbox = (id: string) => boxes[ids.indexOf(id)]!
  const r = await startSends(
    t.db,
    leases.map((l) => ({ id: l.id, token: l.token, mailbox: mailbox(l.id) })),
  )
  expect([...r.started].sort()).toEqual([ids[1]!, ids[2]!].sort())
  expect([...r.paused.keys()]).toEqual([ids[0]!])
  expect(r.paused.get(ids[0]!)).toBeGreaterThan(10_000)
  expect(r.paused.get(ids[0]!)).toBeLessThanOrEqual(20_000)
  expect(r.pacingMs).toBeNull()
})

test('with no pacing in force, a pause set by hand on a paced mailbox (next_at infinity) holds its row; one lifted sends', async () => {
  const ids = [await enqueue(t), await enqueue(t)]
  const leases = await claimAsW1(t.db, { limit: 2, markStarted: false })
  // Both mailboxes paced before (turn_interval 60 s); one paused by hand ('infinity', README), the
  // other lifted (next_at set to now()). No rate noted: no pacing in force.
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval)
     values ('by-hand@example.com', 'infinity', interval '60 seconds'),
            ('lifted@example.com', now(), interval '60 seconds')`,
  )
  const mailbox = (id: string) => (id === ids[0] ? 'by-hand@example.com' : 'lifted@example.com')
  const r = await startSends(
    t.db,
    leases.map((l) => ({ id: l.id, token: l.token, mailbox: mailbox(l.id) })),
  )
  expect([...r.started]).toEqual([ids[1]!])
  expect([...r.paused.keys()]).toEqual([ids[0]!])
  expect<number>(r.paused.get(ids[0]!)!).toBe(ENDLESS_PAUSE_RECHECK_MS)
  expect(r.pacingMs).toBeNull()
})
