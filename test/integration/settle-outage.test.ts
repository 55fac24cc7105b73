// A send's settlement that meets a database outage: recorded once the database is back, not given up and sent again.
import { afterAll, afterEach, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { type DbHandle, openDb } from '../../src/db/open.ts'
import { createLogger } from '../../src/log.ts'
import { useTestDb } from '../support/db.ts'
import { attemptsOf, createTestEngine, enqueue, rowOf, type TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { createFakeSender } from '../support/fake-sender.ts'
import { type OutageProxy, startOutageProxy } from '../support/outage-proxy.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(40_000)

const t = useTestDb({ resetEach: true })
let proxy: OutageProxy | null = null
let handle: DbHandle | null = null
let engine: TestEngine | null = null
// The engine's log lines, parsed: the settle queue says when a write failed and when it gave up.
const lines: { ts: string; level: string; msg: string }[] = []
const log = createLogger('warn', (l) => lines.push(JSON.parse(l)))

beforeAll(async () => {
  // The engine reaches the database through a proxy that can go down as a restart looks.
  proxy = await startOutageProxy(t.url)
  handle = openDb({ name: 'test', url: proxy.url, log, maxConnections: 8 })
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
