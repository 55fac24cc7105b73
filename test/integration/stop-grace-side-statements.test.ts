// A worker's stop whose sends, ending within its grace, begin statements beside them (a paused mailbox's rows' deferral, MAIL_FROM's probe's answer): the stop resolves only once each has answered.
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { SendGate } from '../../src/outbox/send-gate.ts'
import { boundedLatches } from '../support/bounded-latches.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { startThrottlingGraph, useGraphPerTest } from '../support/graph-per-test.ts'
import { pausedOwedAndIdle } from '../support/owed-pause.ts'
import {
  databaseNow,
  graceBeganClock,
  heldWhenStopped,
  openAnswerHoldingHandle,
  woundDownButHeld,
} from '../support/stop-with-answer-held.ts'
import { graphTransport, startTransportWorker } from '../support/transport-worker.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb()
const g = useGraphPerTest()
const GRACE_MS = 20_000

// A gate that waits for nothing but, as pg-send-gate, sends a pause past 1 s back to the claims.
const gate: SendGate = {
  open: false,
  pausedBeyondMs: 1_000,
  acquire: async (_mailbox, signal) => (signal.aborted ? null : { release: async () => {} }),
  pause: async () => {},
}

test('a send that meets a long throttle during the stop’s grace: the stop waits for the deferral of its mailbox’s rows (no statement of the worker left unanswered once it resolves)', async () => {
  const held = await openAnswerHoldingHandle(t)
  // The stop's grace begins with its wait for the sends in flight: past the moment the stop first
  // looked for the statements begun beside the sends.
  const { clock, graceBegan } = graceBeganClock(GRACE_MS)
  const w = createTestEngine(t, { workerId: 'worker-1', deps: { gate, clock, db: held.handle.db } })
  try {
    const mail = { to: 'rcpt@example.com', from: 'other@example.com', subject: 'S', text: 'T' }
    const id = await enqueue(t, mail)
    // Another row of the mailbox, waiting: the one the deferral moves.
    await enqueue(t, mail, { sendAt: new Date(Date.now() + 60_000).toISOString() })
    w.sender.script.set(id, [
      { kind: 'retry', code: 'throttled', message: '429', throttled: true, afterMs: 600_000 },
    ])
    w.sender.hold()
    await w.start()
    await pollUntil(async () => (w.sender.inFlight() === 1 ? true : undefined), 30_000)
    held.proxy.holdAnswerOnceAt('defer_paused_rows')
    const stopAt = await databaseNow(t)
    const heldAtStop = await heldWhenStopped(held.proxy, () => w.stop(GRACE_MS), {
      meanwhile: async () => {
        await graceBegan()
        // The send answers within the stop's grace: its throttle pauses the row's own mailbox.
        w.sender.release()
        await pollUntil(async () => (held.proxy.holding() ? true : undefined), 30_000)
      },
      woundDown: () =>
        woundDownButHeld(t, held.handle, {
          id,
          status: 'pending',
          mailFrom: 'sender@example.com',
          stopAt,
        }),
    })
    expect({ heldWhenStopped: heldAtStop }).toEqual({ heldWhenStopped: false })
  } finally {
    await held.close()
  }
})

test('the probe of MAIL_FROM’s pause answered during the stop’s grace: the stop waits for its answer’s recording (no statement of the worker left unanswered once it resolves)', async () => {
  const FROM = 'outbox@example.com'
  g.fake = await startThrottlingGraph(g, FROM, [FROM])
  const held = await openAnswerHoldingHandle(t)
  // The stop's grace begins with its wait for the sends in flight, the probe's among them.
  const { clock, graceBegan } = graceBeganClock(GRACE_MS)
  const graphAnswers = boundedLatches(55_000).make('Graph’s answer to the probe let go by the test')
  try {
    const id = await enqueue(t)
    const w = await startTransportWorker(t, [], graphTransport(g.fake, FROM), {
      workerId: 'worker-1',
      mailFrom: FROM,
      sendTimeoutMs: 30_000,
      db: held.handle.db,
      clock,
    })
    await pausedOwedAndIdle(t, FROM, w)
    // The pause over, Graph takes the probe's send and answers it when told.
    // Bounded from here: the steps before it is let go are a 30 s poll and the grace's begin (20 s).
    g.fake.setFaults({ answerAfter: graphAnswers.wait() })
    await t.pool.query(
      `with p as (update mailer.mailbox_pacing set next_at = now() - interval '1 minute' where mailbox = $1 returning 1)
       update mailer.email_outbox set send_at = now() - interval '1 minute' where status = 'pending'`,
      [FROM],
    )
    w.drainer.wake()
    await pollUntil(async () => {
      const r = await t.pool.query(
        `select status = 'sending' and send_started_at is not null as out from mailer.email_outbox where id = $1`,
        [id],
      )
      return r.rows[0].out === true ? true : undefined
    }, 30_000)
    held.proxy.holdAnswerOnceAt('set probe_owed = false, probe_id = null')
    const stopAt = await databaseNow(t)
    const heldAtStop = await heldWhenStopped(held.proxy, () => w.stop(GRACE_MS), {
      meanwhile: async () => {
        await graceBegan()
        graphAnswers.resolve()
        await pollUntil(async () => (held.proxy.holding() ? true : undefined), 30_000)
      },
      woundDown: () =>
        woundDownButHeld(t, held.handle, { id, status: 'sent', mailFrom: FROM, stopAt }),
    })
    expect({ heldWhenStopped: heldAtStop }).toEqual({ heldWhenStopped: false })
  } finally {
    graphAnswers.resolve()
    await held.close()
  }
})
