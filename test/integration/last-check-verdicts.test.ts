// What a send does with its last check's answer (only a started row is sent; one found expired, cancelled, busy or lost is not), and with no check but its lease deadline.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { monotonicNow, systemClock } from '../../src/clock.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import { deliverBatch } from '../../src/outbox/deliver.ts'
import type { EngineEvent } from '../../src/outbox/events.ts'
import { createLeaseDeadlines } from '../../src/outbox/lease-deadlines.ts'
import { createSlots } from '../../src/outbox/slots.ts'
import { useTestDb } from '../support/db.ts'
import { deliveryDeps } from '../support/delivery-deps.ts'
import { enqueue, rowOf } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { createFakeSender } from '../support/fake-sender.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

/** Claims up to `limit` rows as worker w1, for 30 s, recording as started those with no expiry. */
const claimStarted = (limit: number) =>
  claimBatch(t.db, {
    limit,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
    markStarted: true,
  })

test('of five rows checked in their send slots, only the one the check starts is sent', async () => {
  // Each with an expiry, so the claim leaves its last check to its slot (sql/0017).
  const inOneHour = { expiresAt: new Date(Date.now() + 3600_000).toISOString() }
  const go = await enqueue(t, undefined, inOneHour)
  const expired = await enqueue(t, undefined, inOneHour)
  const cancelled = await enqueue(t, undefined, inOneHour)
  const busy = await enqueue(t, undefined, inOneHour)
  const lost = await enqueue(t, undefined, inOneHour)
  const { leases } = await claimStarted(5)
  expect(leases.map((l) => l.started)).toEqual([false, false, false, false, false])
  // Between the claim and the check: its expiresAt passes, a cancel is accepted, an application
  // takes the row, another worker reclaims and claims the row.
  await t.pool.query(
    'update mailer.email_outbox set lease_token = gen_random_uuid() where id = $1',
    [lost],
  )
  await t.pool.query(
    `update mailer.email_outbox
        set send_at = now() - interval '2 seconds', expires_at = now() - interval '1 second'
      where id = $1`,
    [expired],
  )
  await t.pool.query('update mailer.email_outbox set cancel_requested_at = now() where id = $1', [
    cancelled,
  ])
  const app = await holdRowLocked(t.pool, busy, 'update')
  const deadlines = createLeaseDeadlines(systemClock, 30_000)
  deadlines.confirm(leases, monotonicNow(systemClock))
  const sender = createFakeSender()
  const events: EngineEvent[] = []
  const done: string[] = []
  const delivery = deliverBatch(
    deliveryDeps(t.db, {
      sender,
      slots: createSlots(4),
      onEvent: (e) => events.push(e),
      deadlines,
      done: (l) => done.push(l.id),
    }),
    leases,
  )
  try {
    // Four rows are done with while the application holds the fifth; its give-back waits for the lock.
    await pollUntil(async () => (done.length === 4 ? true : undefined))
  } finally {
    await app.end('commit')
  }
  await delivery
  expect(sender.calls.map((m) => m.outboxId)).toEqual([go])
  // The lost lease is counted once, as lost before its send; the busy one is not lost.
  expect(events.filter((e) => e.type === 'lease_lost')).toEqual([
    { type: 'lease_lost', db: 'test', id: lost, during: 'start' },
  ])
  expect(events.flatMap((e) => (e.type === 'settled' ? [[e.id, e.outcome]] : [])).sort()).toEqual(
    [
      [go, 'sent'],
      [expired, 'expired'],
      [cancelled, 'cancelled'],
    ].sort(),
  )
  expect(await rowOf(t, expired)).toMatchObject({ status: 'failed', last_error_code: 'expired' })
  expect(await rowOf(t, cancelled)).toMatchObject({ status: 'cancelled' })
  // Given back unsent and uncounted: claimed again once the application lets go.
  expect(await rowOf(t, busy)).toMatchObject({
    status: 'pending',
    attempts: 0,
    send_started_at: null,
  })
})

test('a row the claim recorded as started is not sent once its lease may have ended: its deadline is its only check', async () => {
  const id = await enqueue(t)
  const { leases } = await claimStarted(1)
  expect(leases[0]!.started).toBe(true)
  // It waited in the local queue (its heartbeats failing) for 29 s of a 30 s lease.
  let mono = 1_000_000
  const clock = { ...systemClock, monotonic: () => mono }
  const deadlines = createLeaseDeadlines(clock, 30_000)
  deadlines.confirm(leases, mono)
  mono += 29_000
  const sender = createFakeSender()
  await deliverBatch(deliveryDeps(t.db, { sender, clock, deadlines }), leases)
  expect(sender.calls).toEqual([])
  // Still its lease in the database: handed back uncounted, the claim's mark cleared.
  expect(await rowOf(t, id)).toMatchObject({
    status: 'pending',
    attempts: 0,
    send_started_at: null,
  })
})

test('a row given back only because its heartbeat had not answered yet (a slow database) is no lost lease; one another claim took meanwhile is, once', async () => {
  const held = await enqueue(t)
  const taken = await enqueue(t)
  const { leases } = await claimStarted(2)
  // The heartbeat sent at 1,000,000 extended both leases in the database, but its answer has not
  // come (over the 1 s the configuration allows it): this process cannot count on them with a margin.
  let mono = 1_000_000
  const clock = { ...systemClock, monotonic: () => mono }
  const deadlines = createLeaseDeadlines(clock, 30_000)
  deadlines.confirm(leases, mono)
  mono += 29_000
  await t.pool.query(
    'update mailer.email_outbox set lease_token = gen_random_uuid() where id = $1',
    [taken],
  )
  const events: EngineEvent[] = []
  const sender = createFakeSender()
  await deliverBatch(
    deliveryDeps(t.db, { sender, clock, deadlines, onEvent: (e) => events.push(e) }),
    leases,
  )
  expect(sender.calls).toEqual([])
  expect(events.filter((e) => e.type === 'lease_lost')).toEqual([
    { type: 'lease_lost', db: 'test', id: taken, during: 'start' },
  ])
  expect(await rowOf(t, held)).toMatchObject({ status: 'pending', attempts: 0 })
})
