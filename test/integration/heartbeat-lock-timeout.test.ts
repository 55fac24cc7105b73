// The heartbeat's wait for a row another transaction holds, cut short by lock_timeout: waited for again at once, not at the next tick.
import { afterAll, afterEach, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { type DbHandle, openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, rowOf, type TestEngine } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'
import { createFakeSender } from '../support/fake-sender.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
let engine: TestEngine | null = null
let handle: DbHandle | null = null

beforeAll(async () => {
  // As a managed service or a DBA sets it (and statement_timeout, 30 s, does at a real lease's
  // scale): a lock wait ends after 300 ms.
  const name = new URL(t.url).pathname.slice(1)
  await t.pool.query(`alter database ${name} set lock_timeout = '300ms'`)
  handle = openDb({ name: 'test', url: t.url, log: silentLogger, maxConnections: 8 })
})
afterEach(async () => {
  await engine?.stop()
  engine = null
})
afterAll(async () => {
  await handle?.close()
})

test('a lease whose row an application holds locked is waited for again as soon as a lock_timeout cuts the wait short, not a heartbeat period later, when its lease may have ended and a reclaim come first', async () => {
  const id = await enqueue(t)
  const sender = createFakeSender()
  sender.hold()
  // Ticks 6 s apart: the one after the first is due long after the bound below.
  engine = createTestEngine(t, {
    config: { leaseSeconds: 10, heartbeatSeconds: 6 },
    deps: { sender },
    handle: handle as DbHandle,
  })
  await engine.start()
  await pollUntil(async () => (sender.inFlight() === 1 ? true : undefined))

  const app = await holdRowLocked(t.pool, id, 'update')
  try {
    const appPid = (await app.client.query<{ pid: number }>('select pg_backend_pid() as pid'))
      .rows[0]!.pid
    const waiting = async () => {
      const { rows } = await t.pool.query<{ n: number }>(
        'select count(*)::int as n from pg_stat_activity where $1 = any(pg_blocking_pids(pid))',
        [appPid],
      )
      return rows[0]!.n
    }
    // The first tick finds the row busy; the statement that waits for it meets lock_timeout.
    await engine.events.waitFor((e) => e.type === 'loop_error' && e.where === 'heartbeat', 15_000)
    // Waiting for the lock again at once: well before the next tick (6 s after the first).
    await pollUntil(async () => ((await waiting()) > 0 ? true : undefined), 3_000)

    await app.end('commit')
    sender.release()
    await engine.events.waitFor(settledFor(id, 'sent'))
  } finally {
    await app.end('rollback').catch(() => {})
  }
  expect(sender.calls.filter((m) => m.outboxId === id)).toHaveLength(1)
  const row = await rowOf(t, id)
  expect([row.status, row.attempts]).toEqual(['sent', 1])
})
