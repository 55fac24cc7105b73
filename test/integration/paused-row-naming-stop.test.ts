// A worker's stop while its naming of the rows MAIL_FROM's pause holds waits on the database: the stop resolves only once that statement has answered.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { startThrottlingGraph, useGraphPerTest } from '../support/graph-per-test.ts'
import { pausedOwedAndIdle } from '../support/owed-pause.ts'
import { heldWhenStopped, openAnswerHoldingHandle } from '../support/stop-with-answer-held.ts'
import { graphTransport, startTransportWorker } from '../support/transport-worker.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb()
const g = useGraphPerTest()
const FROM = 'outbox@example.com'

test('a stop waits for the naming of the rows MAIL_FROM’s pause holds: no statement of the worker is left unanswered once it resolves (a next test’s TRUNCATE deadlocked on one)', async () => {
  g.fake = await startThrottlingGraph(g, FROM, [FROM])
  // The naming's statement runs and commits; its answer is held: a database slow to answer it.
  const held = await openAnswerHoldingHandle(t)
  try {
    await enqueue(t)
    const w = await startTransportWorker(t, [], graphTransport(g.fake, FROM), {
      workerId: 'worker-1',
      mailFrom: FROM,
      sendTimeoutMs: 30_000,
      db: held.handle.db,
    })
    await pausedOwedAndIdle(t, FROM, w)
    // A row of MAIL_FROM's enqueued: its notification's claim finds the pause standing and names
    // the rows enqueued since (paused-row-naming.ts).
    held.proxy.holdAnswerOnceAt('in (select id from picked)')
    await enqueue(t)
    await pollUntil(async () => (held.proxy.holding() ? true : undefined), 30_000)
    const heldAtStop = await heldWhenStopped(held.proxy, () => w.stop(100), {
      // The stop's wind-down done (the worker deregistered, its last statement).
      woundDown: async () => {
        const r = await t.pool.query(`select count(*)::int as n from mailer.workers`)
        return r.rows[0].n === 0
      },
    })
    expect({ heldWhenStopped: heldAtStop }).toEqual({ heldWhenStopped: false })
  } finally {
    await held.close()
  }
})
