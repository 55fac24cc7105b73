// Scenario 4: Postgres stops for several seconds mid-drain and comes back: honest readiness, no exit, no spin, nothing lost.
import { afterAll, expect, setDefaultTimeout } from 'bun:test'
import {
  allSent,
  cleanupAll,
  enqueue,
  FAST,
  ownCluster,
  report,
  seconds,
  spawnMailer,
  startGraph,
  within,
} from './harness.ts'
import { test } from './kept-evidence.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). CI's --timeout
// (.ci/run): the bound of the hooks (cleanupAll); each scenario passes its own.
setDefaultTimeout(180_000)
afterAll(cleanupAll)

const OUTAGE_MS = 6_000

test('a database outage: 503 during, 200 after, the process stays up and quiet, every row sent', async () => {
  const cluster = await ownCluster('outage')
  const db = cluster.db
  // Lookups after the outage are not gated by GRAPH_MAX_CONCURRENCY: leave the fake some headroom.
  const graph = await startGraph({ mailRead: true, concurrencyLimit: 16 })
  graph.fake.setFaults({ latencyMs: 300 })
  const mailer = await spawnMailer('outage', {
    DATABASE_URL: db.url,
    ...graph.env,
    ...FAST,
    WORKER_CONCURRENCY: '10',
    GRAPH_MAX_CONCURRENCY: '8',
    GRAPH_MAILBOX_LOOKUP: 'true',
  })
  await mailer.waitReady()
  const before = await enqueue(db, 150, { tag: 'before' })
  // Stop while sends are in flight: Graph accepts them but the outcome cannot be recorded.
  await within(
    'sends in flight before the outage',
    10_000,
    () => (graph.fake.accepted.length >= 20 && graph.fake.inFlight() > 0 ? true : undefined),
    { mailers: [mailer], every: 5 },
  )
  await cluster.stop()
  const stoppedAt = performance.now()
  await within(
    '/readyz 503 naming the unreachable database',
    10_000,
    async () => {
      const r = await mailer.readyz()
      return r.status === 503 && r.body?.databases[0]?.reachable === false ? true : undefined
    },
    { mailers: [mailer] },
  )
  const notReadyAfterMs = performance.now() - stoppedAt

  // The outage itself lasts OUTAGE_MS; all along the process must stay up, unready, and idle.
  const cpu0 = mailer.cpuSeconds()
  const t0 = performance.now()
  let probes = 0
  while (performance.now() - t0 < OUTAGE_MS) {
    expect(mailer.alive()).toBe(true)
    expect((await mailer.readyz()).status).toBe(503)
    const health = await fetch(`${mailer.base}/healthz`)
    expect(health.status).toBe(200)
    probes++
    await Bun.sleep(250)
  }
  const cpuShare = (mailer.cpuSeconds() - cpu0) / ((performance.now() - t0) / 1000)

  await cluster.start()
  const startedAt = performance.now()
  await mailer.waitReady(40_000)
  const readyAfterMs = performance.now() - startedAt
  const after = await enqueue(db, 50, { tag: 'after' })
  await allSent(db, [...before, ...after], 60_000, [mailer])
  const recoverMs = performance.now() - startedAt

  const ids = [...before, ...after]
  report('4 database outage', {
    sent: ids.length,
    duplicates: graph.duplicates(ids),
    outage: seconds(startedAt - stoppedAt),
    notReadyAfter: seconds(notReadyAfterMs),
    readyAfter: seconds(readyAfterMs),
    recover: seconds(recoverMs),
    cpuDuringOutage: `${(cpuShare * 100).toFixed(1)}%`,
  })
  expect(probes).toBeGreaterThan(5)
  expect(mailer.alive()).toBe(true)
  expect(graph.missing(ids)).toEqual([])
  // With the mailbox lookup, sends whose outcome the outage swallowed are found, not repeated.
  expect(graph.duplicates(ids)).toBe(0)
  // Bounded reconnect backoff: an idle process, not a hot retry loop.
  expect(cpuShare).toBeLessThan(0.25)
  mailer.proc.kill('SIGTERM')
  expect(await mailer.exited).toBe(0)
}, 120_000)
