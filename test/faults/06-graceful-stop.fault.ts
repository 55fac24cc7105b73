// Scenario 6: SIGTERM with sends in flight exits 0 within the grace, leaves no live lease; a second signal exits at once.
import { afterAll, expect, setDefaultTimeout } from 'bun:test'
import {
  allSent,
  cleanupAll,
  enqueue,
  FAST,
  report,
  seconds,
  sharedDatabase,
  spawnMailer,
  startGraph,
  statusCounts,
  within,
} from './harness.ts'
import { test } from './kept-evidence.ts'
import { sendCounts } from './send-counts.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). CI's --timeout
// (.ci/run): the bound of the hooks (cleanupAll); each scenario passes its own.
setDefaultTimeout(180_000)
afterAll(cleanupAll)

const GRACE_SECONDS = 4

test('graceful stop mid-send, restart, then a second signal that exits at once', async () => {
  const db = await sharedDatabase('graceful')
  const graph = await startGraph({ concurrencyLimit: 10 })
  const env = {
    DATABASE_URL: db.url,
    ...graph.env,
    ...FAST,
    WORKER_CONCURRENCY: '10',
    GRAPH_MAX_CONCURRENCY: '10',
    SHUTDOWN_GRACE_SECONDS: String(GRACE_SECONDS),
  }
  const liveLeases = async () =>
    (
      await db.q<{ n: number; sending: number }>(
        `select count(*) filter (where lease_expires_at > now())::int as n, count(*)::int as sending
           from mailer.email_outbox where status = 'sending'`,
      )
    )[0]!

  // 1. SIGTERM while slow sends (1 s each) are in flight.
  graph.fake.setFaults({ latencyMs: 1_000 })
  const ids = await enqueue(db, 200)
  const first = await spawnMailer('graceful-1', env)
  await within(
    'sends in flight',
    20_000,
    () => (graph.fake.accepted.length >= 10 && graph.fake.inFlight() >= 5 ? true : undefined),
    { mailers: [first], every: 5 },
  )
  const inFlightAtSignal = graph.fake.inFlight()
  const t0 = performance.now()
  first.proc.kill('SIGTERM')
  const code = await first.exited
  const stopMs = performance.now() - t0
  const left = await liveLeases()
  expect(code).toBe(0)
  expect(stopMs).toBeLessThan(GRACE_SECONDS * 1000)
  expect(left.n).toBe(0)
  // Everything in flight at the signal finished and was recorded: nothing ambiguous is left.
  expect(graph.fake.inFlight()).toBe(0)
  const sentAtStop = (await statusCounts(db)).sent ?? 0
  expect(sentAtStop).toBe(new Set(graph.fake.accepted.map((a) => a.outboxId)).size)

  graph.fake.setFaults({ latencyMs: 20 })
  const second = await spawnMailer('graceful-2', env)
  const restartAt = performance.now()
  await allSent(db, ids, 30_000, [second])
  const drainMs = performance.now() - restartAt

  // 2. A second signal while the first waits on hung sends (grace 60 s) ends the process at once.
  graph.fake.setFaults({ sendMail: Array(10).fill('hang') })
  const stuck = await enqueue(db, 10, { tag: 'stuck' })
  await within('hung sends in flight', 10_000, () =>
    graph.fake.inFlight() >= 5 ? true : undefined,
  )
  second.proc.kill('SIGTERM')
  // The first signal is being handled once /readyz stops answering 200 (listeners are stopped first).
  await within('shutdown under way', 5_000, async () =>
    (await second.readyz().catch(() => null))?.status === 200 ? undefined : true,
  )
  const t1 = performance.now()
  second.proc.kill('SIGTERM')
  const secondCode = await second.exited
  const secondMs = performance.now() - t1
  expect(secondMs).toBeLessThan(1_000)
  expect(secondCode).not.toBe(0)

  // Rows the abrupt exit left behind are reclaimed after their lease and sent; hung sends were never accepted.
  graph.fake.setFaults({ latencyMs: 20 })
  const third = await spawnMailer('graceful-3', { ...env, SHUTDOWN_GRACE_SECONDS: '60' })
  const t2 = performance.now()
  await allSent(db, stuck, 30_000, [third])
  const reclaimMs = performance.now() - t2

  const all = [...ids, ...stuck]
  const sends = await sendCounts(db, graph, all)
  report('6 graceful stop', {
    sent: (await statusCounts(db)).sent ?? 0,
    duplicates: sends.duplicates,
    ambiguousResends: sends.ambiguousResends,
    inFlightAtSignal,
    exitIn: seconds(stopMs),
    liveLeasesAfter: left.n,
    restartDrain: seconds(drainMs),
    secondSignalExitIn: seconds(secondMs),
    secondSignalCode: secondCode,
    recoverAfterAbrupt: seconds(reclaimMs),
  })
  expect(await statusCounts(db)).toEqual({ sent: all.length })
  expect(graph.missing(all)).toEqual([])
  expect(sends.doubleSends).toEqual([])
  third.proc.kill('SIGTERM')
  expect(await third.exited).toBe(0)
}, 120_000)
