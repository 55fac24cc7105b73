// Scenario 3: the LISTEN connection goes half-open (a proxy stops forwarding, never closes): noticed, replaced, swept.
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
  startFreezingProxy,
  startGraph,
  within,
} from './harness.ts'
import { test } from './kept-evidence.ts'
import { sendCounts } from './send-counts.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). CI's --timeout
// (.ci/run): the bound of the hooks (cleanupAll); each scenario passes its own.
setDefaultTimeout(180_000)
afterAll(cleanupAll)

test('a half-open LISTEN connection is noticed by the check, replaced, and new rows are delivered', async () => {
  const db = await sharedDatabase('half_open')
  const graph = await startGraph()
  const proxy = await startFreezingProxy(db.url)
  const listenUrl = new URL(db.url)
  listenUrl.port = String(proxy.port)
  const mailer = await spawnMailer('half-open', {
    DATABASE_URL: db.url,
    LISTEN_DATABASE_URL: listenUrl.toString(),
    ...graph.env,
    ...FAST,
    LISTEN_CHECK_SECONDS: '1',
  })
  await mailer.waitReady()
  // Fewer rows than one claim takes (WORKER_CONCURRENCY, 10): after a full claim the worker claims
  // again once its sends are done, and that claim could find the rows enqueued below, while the
  // socket is frozen, without any notification.
  const before = await enqueue(db, 5, { tag: 'before' })
  await allSent(db, before, 5_000, [mailer])

  const connections = proxy.accepted()
  expect(proxy.freeze()).toBe(1)
  const frozenAt = performance.now()
  // Committed while the socket is dead: the notification goes nowhere; only the check's noticing
  // it finds these (the loss wakes the worker, which polls every second until the reconnect sweeps).
  const during = await enqueue(db, 20, { tag: 'during' })
  await allSent(db, during, 20_000, [mailer])
  const recoverMs = performance.now() - frozenAt
  // The loss's look may send them before the new session's connect reaches the proxy.
  await within('a new LISTEN connection', 10_000, () =>
    proxy.accepted() > connections ? true : undefined,
  )

  // The replacement LISTEN session carries notifications again.
  await mailer.waitReady(5_000)
  const t0 = performance.now()
  const after = await enqueue(db, 10, { tag: 'after' })
  await allSent(db, after, 3_000, [mailer])
  const afterMs = performance.now() - t0

  const ids = [...before, ...during, ...after]
  const sends = await sendCounts(db, graph, ids)
  report('3 half-open listener', {
    sent: ids.length,
    duplicates: sends.duplicates,
    ambiguousResends: sends.ambiguousResends,
    recover: seconds(recoverMs),
    deliveryAfter: seconds(afterMs),
  })
  expect(graph.missing(ids)).toEqual([])
  expect(sends.doubleSends).toEqual([])
  await within('still ready', 5_000, async () =>
    (await mailer.readyz()).status === 200 ? true : undefined,
  )
  mailer.proc.kill('SIGTERM')
  expect(await mailer.exited).toBe(0)
}, 60_000)
