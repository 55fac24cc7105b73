// One heartbeat tick past a row another transaction holds: that lease is busy, not lost, and is extended once the lock goes.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { systemClock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { claimBatch, type Lease } from '../../src/outbox/claim.ts'
import type { EngineEvent } from '../../src/outbox/events.ts'
import { createLeaseDeadlines } from '../../src/outbox/lease-deadlines.ts'
import { createLeaseHeartbeat } from '../../src/outbox/lease-heartbeat.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

test('a held row is neither reported lost nor left unextended: its lease is extended when the lock goes', async () => {
  const busy = await enqueue(t)
  const free = await enqueue(t)
  const { leases } = await claimBatch(t.db, {
    limit: 2,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
  })
  const held = new Map<string, Lease>(leases.map((l) => [l.id, l]))
  const deadlines = createLeaseDeadlines(systemClock, 30_000)
  const events: EngineEvent[] = []
  const running = new Set<Promise<unknown>>()
  const heartbeat = createLeaseHeartbeat(
    {
      dbName: 'test',
      db: t.db,
      worker: { id: 'w1', host: 'h', pid: 1, version: 't' },
      config: { leaseSeconds: 120 },
      clock: systemClock,
      log: silentLogger,
      onEvent: (e) => events.push(e),
      held,
      settling: () => false,
      deadlines,
    },
    (p) => {
      running.add(p)
      return p
    },
    () => false,
  )
  const leaseLeft = async (id: string) =>
    (
      await t.pool.query<{ s: number }>(
        `select extract(epoch from lease_expires_at - now())::float8 as s
           from mailer.email_outbox where id = $1`,
        [id],
      )
    ).rows[0]!.s
  const app = await holdRowLocked(t.pool, busy, 'update')
  try {
    await heartbeat()
    expect(await leaseLeft(free)).toBeGreaterThan(100)
    expect(events).toEqual([])
    expect(deadlines.isLost(held.get(busy)!)).toBe(false)
  } finally {
    await app.end('commit')
  }
  // The wait for the busy row ends with the lock, extending its lease.
  await Promise.all(running)
  expect(await leaseLeft(busy)).toBeGreaterThan(100)
  expect(events).toEqual([])
  expect(deadlines.holds(held.get(busy)!)).toBe(true)
})
