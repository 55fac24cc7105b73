// A worker's stop while its naming of the rows MAIL_FROM's pause holds waits on the database: the stop resolves only once that statement has answered.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { startAnswerHoldingProxy } from '../support/answer-holding-proxy.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { startThrottlingGraph, useGraphPerTest } from '../support/graph-per-test.ts'
import { pausedOwedAndIdle } from '../support/owed-pause.ts'
import { graphTransport, startTransportWorker } from '../support/transport-worker.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb()
const g = useGraphPerTest()
const FROM = 'outbox@example.com'

test('a stop waits for the naming of the rows MAIL_FROM’s pause holds: no statement of the worker is left unanswered once it resolves (a next test’s TRUNCATE deadlocked on one)', async () => {
  g.fake = await startThrottlingGraph(g, FROM, [FROM])
  // The naming's statement runs and commits; its answer is held: a database slow to answer it.
  const proxy = await startAnswerHoldingProxy(t.url)
  const handle = openDb({ name: 'test', url: proxy.url, log: silentLogger, maxConnections: 20 })
  try {
    await enqueue(t)
    const w = await startTransportWorker(t, [], graphTransport(g.fake, FROM), {
      workerId: 'worker-1',
      mailFrom: FROM,
      sendTimeoutMs: 30_000,
      db: handle.db,
    })
    await pausedOwedAndIdle(t, FROM, w)
    // A row of MAIL_FROM's enqueued: its notification's claim finds the pause standing and names
    // the rows enqueued since (paused-row-naming.ts).
    proxy.holdAnswerOnceAt('in (select id from picked)')
    await enqueue(t)
    await pollUntil(async () => (proxy.holding() ? true : undefined), 30_000)
    // Whether the naming's answer was still held when the stop resolved.
    const at = { stop: null as boolean | null }
    const stopped = w.stop(100).then(() => {
      at.stop = proxy.holding()
    })
    // The stop's wind-down done (the worker deregistered, its last statement), or the stop over.
    await pollUntil(async () => {
      if (at.stop !== null) return true
      const r = await t.pool.query(`select count(*)::int as n from mailer.workers`)
      return r.rows[0].n === 0 ? true : undefined
    }, 30_000)
    proxy.release()
    await stopped
    expect({ heldWhenStopped: at.stop }).toEqual({ heldWhenStopped: false })
  } finally {
    proxy.release()
    await handle.close()
    proxy.close()
  }
})
