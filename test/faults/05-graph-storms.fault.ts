// Scenario 5: Graph storms (30 % 429 with Retry-After, then 503s, then hung requests): all sent, none failed, limit kept.
import { afterAll, expect, setDefaultTimeout } from 'bun:test'
import type { GraphFault } from '../support/fake-graph.ts'
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

const ROWS = 300
const MAX_ATTEMPTS = 3
const LIMIT = 4
const SERVICE_UNAVAILABLE = 40
const HUNG = 8
const SENDERS = ['a@contoso.example', 'b@contoso.example', 'c@contoso.example']

test('throttling, 503s and hung requests: every row sent, none failed, concurrency never above the limit', async () => {
  const db = await sharedDatabase('storms')
  // The fake answers 429 MailboxConcurrency above LIMIT: exceeding it would show as throttles too.
  const graph = await startGraph({ concurrencyLimit: LIMIT })
  const mailer = await spawnMailer('storms', {
    DATABASE_URL: db.url,
    ...graph.env,
    ...FAST,
    WORKER_CONCURRENCY: '10',
    GRAPH_MAX_CONCURRENCY: String(LIMIT),
    MAX_ATTEMPTS: String(MAX_ATTEMPTS),
  })
  await mailer.waitReady()
  const attemptsWhere = async (cond: string) =>
    (
      await db.q<{ n: number }>(
        `select count(*)::int as n from mailer.email_attempts where ${cond}`,
      )
    )[0]!.n

  const t0 = performance.now()
  // A canary alone in the outbox is throttled more often than MAX_ATTEMPTS allows attempts.
  const throttled: GraphFault = {
    status: 429,
    code: 'ApplicationThrottled',
    message: 'Application is over its MailboxConcurrency limit.',
    retryAfter: '1',
  }
  graph.fake.setFaults({ sendMail: Array(MAX_ATTEMPTS + 1).fill(throttled) })
  const canary = await enqueue(db, 1, { tag: 'canary' })
  await allSent(db, canary, 20_000, [mailer])

  graph.fake.setFaults({ throttleFraction: 0.3, retryAfter: '1', latencyMs: 30 })
  const ids = await enqueue(db, ROWS, { senders: SENDERS })
  await within('a third of the rows through the throttling', 30_000, () =>
    graph.fake.accepted.length >= ROWS / 3 ? true : undefined,
  )

  const unavailable: GraphFault = {
    status: 503,
    code: 'ServiceUnavailable',
    message: 'Service Unavailable',
    retryAfter: '1',
  }
  graph.fake.setFaults({ sendMail: Array(SERVICE_UNAVAILABLE).fill(unavailable), latencyMs: 30 })
  await within(
    `${SERVICE_UNAVAILABLE} requests answered 503`,
    30_000,
    async () =>
      (await attemptsWhere('http_status = 503')) >= SERVICE_UNAVAILABLE ? true : undefined,
    { mailers: [mailer] },
  )

  graph.fake.setFaults({ sendMail: Array(HUNG).fill('hang'), latencyMs: 30 })
  await within(
    `${HUNG} hung requests timed out`,
    30_000,
    async () => ((await attemptsWhere(`error_code = 'timeout'`)) >= HUNG ? true : undefined),
    { mailers: [mailer] },
  )

  graph.fake.setFaults({ latencyMs: 30 })
  await allSent(db, ids, 60_000, [mailer])
  const drainMs = performance.now() - t0

  const [stats] = await db.q<{ throttled: number; max_throttled: number; max_attempts: number }>(
    `select (select count(*)::int from mailer.email_attempts where outcome = 'throttled') as throttled,
            (select coalesce(max(n), 0)::int from (select count(*) as n from mailer.email_attempts
               where outcome = 'throttled' group by outbox_id) t) as max_throttled,
            (select max(attempts)::int from mailer.email_outbox) as max_attempts`,
  )
  const sends = await sendCounts(db, graph, [...canary, ...ids])
  report('5 graph storms', {
    sent: (await statusCounts(db)).sent ?? 0,
    duplicates: sends.duplicates,
    ambiguousResends: sends.ambiguousResends,
    throttled: stats!.throttled,
    maxThrottledOneRow: stats!.max_throttled,
    maxConcurrent: graph.fake.maxConcurrent,
    drain: seconds(drainMs),
  })
  expect(await statusCounts(db)).toEqual({ sent: ROWS + 1 })
  expect(graph.missing([...canary, ...ids])).toEqual([])
  // Hung requests never reached Graph's acceptance: resending them is not a duplicate.
  expect(sends.doubleSends).toEqual([])
  expect(graph.fake.maxConcurrent).toBeLessThanOrEqual(LIMIT)
  expect(graph.fake.maxConcurrent).toBeGreaterThan(1)
  // Throttles do not burn attempts: the canary was throttled more than MAX_ATTEMPTS times and sent.
  expect(stats!.max_throttled).toBeGreaterThan(MAX_ATTEMPTS)
  expect(stats!.max_attempts).toBeLessThanOrEqual(MAX_ATTEMPTS)
  mailer.proc.kill('SIGTERM')
  expect(await mailer.exited).toBe(0)
}, 150_000)
