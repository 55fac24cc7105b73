// A send's settlement that meets a database outage: recorded once the database is back, not given up and sent again; fenced off once another worker took the row.
import { afterAll, afterEach, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { type DbHandle, openDb } from '../../src/db/open.ts'
import { createLogger } from '../../src/log.ts'
import { useTestDb } from '../support/db.ts'
import { attemptsOf, createTestEngine, enqueue, rowOf, type TestEngine } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'
import { createFakeSender } from '../support/fake-sender.ts'
import { type OutageProxy, startOutageProxy } from '../support/outage-proxy.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(40_000)

const t = useTestDb({ resetEach: true })
let proxy: OutageProxy | null = null
let handle: DbHandle | null = null
let engine: TestEngine | null = null
let other: TestEngine | null = null
// The engine's log lines, parsed: the settle queue says when a write failed and when it gave up.
const lines: { ts: string; level: string; msg: string }[] = []
const log = createLogger('warn', (l) => lines.push(JSON.parse(l)))

beforeAll(async () => {
  // The engine reaches the database through a proxy that can go down as a restart looks.
  proxy = await startOutageProxy(t.url)
  handle = openDb({ name: 'test', url: proxy.url, log, maxConnections: 8 })
})
afterEach(async () => {
  await Promise.all([engine?.stop(), other?.stop()])
  engine = null
  other = null
})
afterAll(async () => {
  await handle?.close()
  await proxy?.close()
})

const LEASE_SECONDS = 4

test('a send recorded while the database is away for longer than half a lease (but less than one) is recorded once it is back, and sent once', async () => {
  const id = await enqueue(t)
  const sender = createFakeSender()
  sender.hold()
  engine = createTestEngine(t, {
    config: { leaseSeconds: LEASE_SECONDS, heartbeatSeconds: 1 },
    deps: { sender, log },
    handle: handle as DbHandle,
  })
  await engine.start()
  await pollUntil(async () => (sender.inFlight() === 1 ? true : undefined))

  // The database goes away (a restart, a failover) while the provider accepts the message.
  await proxy?.down()
  const from = lines.length
  sender.release()
  // Until the worker has tried to record the send for longer than half a lease, or gave up.
  const halfLeaseMs = (LEASE_SECONDS * 1000) / 2
  await pollUntil(async () => {
    const failing = lines
      .slice(from)
      .filter((l) => /recording send outcomes|record send outcomes/.test(l.msg))
    if (failing.length === 0) return undefined
    const first = Date.parse(failing[0]!.ts)
    const last = Date.parse(failing.at(-1)!.ts)
    return last - first > halfLeaseMs || failing.some((l) => l.level === 'error') ? true : undefined
  }, 20_000)
  await proxy?.up()

  await pollUntil(async () => ((await rowOf(t, id)).status === 'sent' ? true : undefined), 20_000)
  expect(sender.calls.filter((m) => m.outboxId === id)).toHaveLength(1)
  expect(await attemptsOf(t, id, 'outcome')).toEqual([{ outcome: 'sent' }])
  expect(engine.events.events.filter((e) => e.type === 'lease_lost')).toEqual([])
})

test('a send whose worker loses its database for good: another worker reclaims the row, finds it in the mailbox instead of sending it again, and the first worker’s late record finds the lease gone', async () => {
  const id = await enqueue(t)
  const sender = createFakeSender()
  sender.hold()
  engine = createTestEngine(t, {
    workerId: 'cut-off',
    config: { leaseSeconds: LEASE_SECONDS, heartbeatSeconds: 1 },
    deps: { sender, log },
    handle: handle as DbHandle,
  })
  await engine.start()
  await pollUntil(async () => (sender.inFlight() === 1 ? true : undefined))

  // Only this worker loses the database (its network, its proxy): the provider accepts the message
  // and its outcome cannot be recorded, retried without bound.
  await proxy?.down()
  sender.release()
  // Another worker reaches the database, reclaims the row once its lease has ended, and looks it up
  // in the mailbox, which holds what the first worker's send delivered.
  const mailbox = new Set<string>()
  other = createTestEngine(t, {
    workerId: 'still-connected',
    config: { leaseSeconds: LEASE_SECONDS, heartbeatSeconds: 1 },
    deps: {
      lookup: async (mail) => (mailbox.has(mail.outboxId) ? 'found' : 'not_found'),
    },
  })
  for (const m of sender.calls) mailbox.add(m.outboxId)
  await other.start()
  await other.events.waitFor(settledFor(id, 'sent'), 20_000)

  // The first worker's database comes back: its record is fenced off by the lease it lost.
  await proxy?.up()
  await engine.events.waitFor((e) => e.type === 'lease_lost' && e.id === id, 20_000)
  expect(sender.calls.filter((m) => m.outboxId === id)).toHaveLength(1)
  expect(other.sender.calls).toEqual([])
  const row = await rowOf(t, id)
  // Two claims, each an attempt; the second sent nothing.
  expect([row.status, row.attempts, row.send_started_at]).toEqual(['sent', 2, null])
  expect(await attemptsOf(t, id, 'outcome, worker_id, error_code')).toEqual([
    { outcome: 'lease_expired', worker_id: 'cut-off', error_code: 'lease_expired' },
    { outcome: 'sent', worker_id: 'still-connected', error_code: null },
  ])
})
