// Heartbeats past a row another transaction holds locked: the worker's other leases are still extended.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import { extendReachableLeases } from '../../src/outbox/heartbeat.ts'
import { reclaimExpired } from '../../src/outbox/reclaim.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, rowOf, type TestEngine } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'
import { createFakeSender } from '../support/fake-sender.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
let engine: TestEngine | null = null
afterEach(async () => {
  await engine?.stop()
  engine = null
})

// Short, so the test waits one out; long against a stalled tick: at 2 s (ticks 0.5 s apart) one
// tick stalled 2.5 s (a loaded machine) let the other row's lease end, and it was sent twice.
const LEASE_SECONDS = 6

test('an application holding one claimed row locked past its lease lets none of the worker’s leases lapse: none is reclaimed and sent twice', async () => {
  // The lower id: the heartbeat locks its rows in id order, so it meets this one first.
  const locked = await enqueue(t)
  const other = await enqueue(t)
  const sender = createFakeSender()
  sender.hold()
  engine = createTestEngine(t, {
    config: { leaseSeconds: LEASE_SECONDS, heartbeatSeconds: LEASE_SECONDS / 4 },
    deps: { sender },
  })
  await engine.start()
  // Both rows claimed and in their sends (a slow provider).
  await pollUntil(async () => (sender.inFlight() === 2 ? true : undefined))

  // The application updates the first row's message in a transaction it keeps open.
  const app = await holdRowLocked(t.pool, locked, 'update')
  try {
    const lockedAt = (await app.client.query<{ now: Date }>('select now()')).rows[0]!.now.getTime()
    const leaseMs = LEASE_SECONDS * 1000
    // Meanwhile another worker reclaims every lease that ends, for as long as the application holds
    // the lock: past the end of any lease the locked row had, and until a heartbeat that began
    // after the lock extends the other row's lease (or a reclaim takes it).
    let outcome: 'extended' | 'reclaimed' | undefined
    await pollUntil(async () => {
      await reclaimExpired(t.db, { defaultMaxAttempts: 3 })
      const r = await rowOf(t, other)
      if (r.status !== 'sending') outcome = 'reclaimed'
      else if (r.lease_expires_at.getTime() > lockedAt + leaseMs) outcome ??= 'extended'
      const now = (await t.pool.query<{ now: Date }>('select now()')).rows[0]!.now.getTime()
      return outcome && now > lockedAt + leaseMs + 250 ? true : undefined
    })
    expect((await rowOf(t, locked)).lease_expires_at.getTime()).toBeLessThan(lockedAt + leaseMs)
    await app.end('commit')
    sender.release()
    engine.drainer.wake()
    await engine.events.waitFor(settledFor(other, 'sent'))
    await engine.events.waitFor(settledFor(locked, 'sent'))
    expect(sender.calls.filter((m) => m.outboxId === other)).toHaveLength(1)
    expect(outcome).toBe('extended')
  } finally {
    await app.end('rollback')
  }
  // The locked row's lease ended while the application held it; the heartbeat waiting for that
  // lock extended it when the lock went, ahead of any reclaim: it too was sent once.
  expect(sender.calls.filter((m) => m.outboxId === locked)).toHaveLength(1)
  for (const id of [locked, other]) {
    const row = await rowOf(t, id)
    expect([row.status, row.attempts]).toEqual(['sent', 1])
  }
})

test('a tick’s statement extends the leases it can lock at once, names busy a row another transaction holds, and leaves out a lost one', async () => {
  const ids = [await enqueue(t), await enqueue(t), await enqueue(t)]
  const { leases } = await claimBatch(t.db, {
    limit: 3,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
  })
  const [free, held, lost] = ids as [string, string, string]
  // Reclaimed and claimed again elsewhere: the lease is lost.
  await t.pool.query(
    `update mailer.email_outbox set lease_token = gen_random_uuid() where id = $1`,
    [lost],
  )
  const before = await rowOf(t, held)
  const app = await holdRowLocked(t.pool, held)
  try {
    const worker = { id: 'w1', host: 'h', pid: 1, version: 't' }
    // Answers at once, though one of its rows is locked.
    const r = await extendReachableLeases(t.db, worker, leases, 120)
    expect([[...r.extended], [...r.busy]]).toEqual([[free], [held]])
  } finally {
    await app.end('rollback')
  }
  // Extended to 120 s from now: past the claim's 30 s by far.
  expect((await rowOf(t, free)).lease_expires_at.getTime()).toBeGreaterThan(
    before.lease_expires_at.getTime() + 60_000,
  )
  expect((await rowOf(t, held)).lease_expires_at).toEqual(before.lease_expires_at)
})
