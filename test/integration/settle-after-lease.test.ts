// A send recorded while its worker's database is away for longer than the lease: the worker that knows the outcome records it, nothing is held or sent again.
import { afterAll, afterEach, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { type DbHandle, openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { useTestDb } from '../support/db.ts'
import { attemptsOf, createTestEngine, enqueue, rowOf, type TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { createFakeSender } from '../support/fake-sender.ts'
import { type OutageProxy, startOutageProxy } from '../support/outage-proxy.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
let proxy: OutageProxy | null = null
let handle: DbHandle | null = null
let engine: TestEngine | null = null
beforeAll(async () => {
  proxy = await startOutageProxy(t.url)
  handle = openDb({ name: 'test', url: proxy.url, log: silentLogger, maxConnections: 8 })
})
afterEach(async () => {
  await engine?.stop()
  engine = null
})
afterAll(async () => {
  await handle?.close()
  await proxy?.close()
})

const LEASE_SECONDS = 4

test('hold policy, no lookup: a send accepted while the database is away for longer than the lease is recorded sent by its worker once it is back, not held for review', async () => {
  const id = await enqueue(t)
  const sender = createFakeSender()
  sender.hold()
  engine = createTestEngine(t, {
    workerId: 'only',
    config: { leaseSeconds: LEASE_SECONDS, heartbeatSeconds: 1 },
    deps: { sender, ambiguousPolicy: 'hold', lookup: null },
    handle: handle as DbHandle,
  })
  await engine.start()
  await pollUntil(async () => (sender.inFlight() === 1 ? true : undefined))
  await proxy?.down()
  sender.release()
  // Away until the lease has ended in database time.
  await pollUntil(async () => {
    const r = await t.pool.query(
      'select lease_expires_at < now() as ended from mailer.email_outbox where id = $1',
      [id],
    )
    return r.rows[0].ended ? true : undefined
  }, 20_000)
  await proxy?.up()

  // Once back, the worker's own reclaim leaves the row to the settlement under way, which records
  // what the worker knows: sent. (Reclaimed first, it was held for review: ambiguous_send.)
  await pollUntil(
    async () => (['sent', 'failed'].includes((await rowOf(t, id)).status) ? true : undefined),
    30_000,
  )
  expect(sender.calls.filter((m) => m.outboxId === id)).toHaveLength(1)
  const row = await rowOf(t, id)
  expect([row.status, row.last_error_code, row.attempts]).toEqual(['sent', null, 1])
  expect(await attemptsOf(t, id, 'outcome, worker_id')).toEqual([
    { outcome: 'sent', worker_id: 'only' },
  ])
  expect(engine.events.events.filter((e) => e.type === 'reclaimed')).toEqual([])
})
