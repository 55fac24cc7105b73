// A stop while the database is down: sends in flight whose outcomes cannot be recorded do not hold the stop past the grace.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { ABORTED_SENDS_WAIT_MS } from '../../src/outbox/shutdown-grace.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, type TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { createFakeSender } from '../support/fake-sender.ts'
import { startSilencingProxy } from '../support/silencing-proxy.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(90_000)

const t = useTestDb({ resetEach: true })
let engine: TestEngine | null = null
afterEach(async () => {
  await engine?.stop(0).catch(() => {})
  engine = null
})

test('sends that finish while the database is down: the stop ends within the grace and the aborted sends’ wait, not after retrying their outcomes', async () => {
  // The worker's statements go through a proxy that stops the database for it; the test's own
  // pool and the LISTEN session reach it directly.
  const proxy = await startSilencingProxy(t.url)
  const h = openDb({ name: 'down', url: proxy.url, log: silentLogger })
  const sender = createFakeSender()
  sender.hold()
  // The default lease: outcomes are retried for half of it (30 s) before the lease is left to expire.
  engine = createTestEngine(t, { handle: h, deps: { sender }, config: { leaseSeconds: 60 } })
  await engine.start()
  try {
    for (let i = 0; i < 3; i++) await enqueue(t)
    await pollUntil(async () => (sender.inFlight() === 3 ? true : undefined), 20_000)
    // Postgres goes away (refused from now on), then the sends finish: nothing can record them.
    proxy.close()
    sender.release()
    const graceMs = 1_000
    const stoppedAt = performance.now()
    await engine.stop(graceMs)
    const ms = performance.now() - stoppedAt
    engine = null
    // Fly's kill_timeout is SHUTDOWN_GRACE_SECONDS + 10 s: within that, with room for the pools.
    expect(ms).toBeLessThan(graceMs + ABORTED_SENDS_WAIT_MS + 4_000)
    // Unrecorded, the rows stay with their leases, which expire and are reclaimed.
    const rows = await t.pool.query(`select distinct status from mailer.email_outbox`)
    expect(rows.rows).toEqual([{ status: 'sending' }])
  } finally {
    await h.close().catch(() => {})
  }
})
