// Scenario 7: three worker processes drain one database: each row sent exactly once, the per-mailbox rate held across them.
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
} from './harness.ts'
import { test } from './kept-evidence.ts'
import { sendCounts } from './send-counts.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). CI's --timeout
// (.ci/run): the bound of the hooks (cleanupAll); each scenario passes its own.
setDefaultTimeout(180_000)
afterAll(cleanupAll)

const ROWS = 3000
const WORKERS = 3
const RATE_PER_MINUTE = 1200
const SENDERS = Array.from({ length: 10 }, (_, i) => `sender${i}@contoso.example`)
// Pacing is decided in database time when a send is let through; Graph sees the request a little
// later (slot, start, HTTP), so gaps may shrink by that delay. Allow this much of it per window.
const JITTER_MS = 250

test('three processes on one database: every row sent exactly once, per-mailbox rate held', async () => {
  const db = await sharedDatabase('many_workers')
  const graph = await startGraph({ concurrencyLimit: 30 })
  graph.fake.setFaults({ latencyMs: 20 })
  const ids = await enqueue(db, ROWS, { senders: SENDERS })
  const env = {
    DATABASE_URL: db.url,
    ...graph.env,
    ...FAST,
    WORKER_CONCURRENCY: '20',
    GRAPH_MAX_CONCURRENCY: '30',
    MAILBOX_RATE_PER_MINUTE: String(RATE_PER_MINUTE),
    // Not warn: spawnMailer reads each worker's port from its "http listening" line (info).
    LOG_LEVEL: 'info',
  }
  const t0 = performance.now()
  const workers = await Promise.all(
    Array.from({ length: WORKERS }, (_, i) => spawnMailer(`worker-${i}`, env, { role: 'worker' })),
  )
  await allSent(db, ids, 90_000, workers)
  const drainMs = performance.now() - t0

  // The rate: the most sends one mailbox got through in any one-second window.
  const intervalMs = 60_000 / RATE_PER_MINUTE
  const allowed = Math.floor(1000 / intervalMs) + 1 + Math.ceil(JITTER_MS / intervalMs)
  let worstWindow = 0
  for (const sender of SENDERS) {
    const times = graph.fake.accepted
      .filter((a) => a.mailbox === sender)
      .map((a) => a.acceptedAt)
      .sort((a, b) => a - b)
    let lo = 0
    for (let hi = 0; hi < times.length; hi++) {
      while (times[hi]! - times[lo]! >= 1000) lo++
      worstWindow = Math.max(worstWindow, hi - lo + 1)
    }
  }
  const perWorker = await db.q<{ worker_id: string; n: number }>(
    `select worker_id, count(*)::int as n from mailer.email_attempts
      where outcome = 'sent' group by worker_id order by worker_id`,
  )
  // AMBIGUOUS_SEND_POLICY=resend (the default): a send whose request outlived
  // GRAPH_REQUEST_TIMEOUT_SECONDS on a loaded machine may have been taken, and is sent again.
  const sends = await sendCounts(db, graph, ids)
  report('7 many workers', {
    workers: WORKERS,
    sent: (await statusCounts(db)).sent ?? 0,
    duplicates: sends.duplicates,
    ambiguousResends: sends.ambiguousResends,
    perWorker: perWorker.map((w) => w.n).join('/'),
    worstMailboxPerSecond: `${worstWindow}(limit ${RATE_PER_MINUTE / 60}, allowed ${allowed})`,
    maxConcurrent: graph.fake.maxConcurrent,
    drain: seconds(drainMs),
  })
  expect(await statusCounts(db)).toEqual({ sent: ROWS })
  expect(graph.missing(ids)).toEqual([])
  expect(sends.doubleSends).toEqual([])
  expect(graph.fake.accepted.length).toBe(ROWS + sends.ambiguousResends)
  // Every process took part, and together they never beat one mailbox's rate.
  expect(perWorker.length).toBe(WORKERS)
  expect(worstWindow).toBeLessThanOrEqual(allowed)
  expect(graph.fake.maxConcurrent).toBeLessThanOrEqual(30)
  for (const w of workers) w.proc.kill('SIGTERM')
  expect(await Promise.all(workers.map((w) => w.exited))).toEqual([0, 0, 0])
}, 150_000)
