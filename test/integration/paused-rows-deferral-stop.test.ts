// A worker's stop during which a send in its grace meets a long throttle: the stop resolves only once the paused mailbox's rows' deferral has answered.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { type Clock, systemClock } from '../../src/clock.ts'
import type { SendGate } from '../../src/outbox/send-gate.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { heldWhenStopped, openAnswerHoldingHandle } from '../support/stop-with-answer-held.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb()
const OTHER = 'other@example.com'
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
  // The stop's grace (GRACE_MS) begins with the wait for the sends in flight: past the moment the
  // stop looks for the statements begun beside the sends.
  const graceBegan = Promise.withResolvers<void>()
  const clock: Clock = {
    ...systemClock,
    sleep(ms, signal) {
      if (ms > GRACE_MS - 5_000 && ms <= GRACE_MS) graceBegan.resolve()
      return systemClock.sleep(ms, signal)
    },
  }
  const { pool, db } = held.handle
  const w = createTestEngine(t, { workerId: 'worker-1', deps: { gate, clock, db } })
  try {
    const id = await enqueue(t, { to: 'rcpt@example.com', from: OTHER, subject: 'S', text: 'T' })
    // Another row of the mailbox, waiting: the one the deferral moves.
    await enqueue(
      t,
      { to: 'rcpt@example.com', from: OTHER, subject: 'S', text: 'T' },
      { sendAt: new Date(Date.now() + 60_000).toISOString() },
    )
    w.sender.script.set(id, [
      { kind: 'retry', code: 'throttled', message: '429', throttled: true, afterMs: 600_000 },
    ])
    w.sender.hold()
    await w.start()
    await pollUntil(async () => (w.sender.inFlight() === 1 ? true : undefined), 30_000)
    held.proxy.holdAnswerOnceAt('defer_paused_rows')
    const stopAt = (await t.pool.query('select now() as at')).rows[0].at
    const heldAtStop = await heldWhenStopped(held.proxy, () => w.stop(GRACE_MS), {
      meanwhile: async () => {
        await graceBegan.promise
        // The send answers within the stop's grace: its throttle pauses the row's own mailbox.
        w.sender.release()
        await pollUntil(async () => (held.proxy.holding() ? true : undefined), 30_000)
      },
      // The row settled, the worker's last acts (its deregistration, MAIL_FROM noted again)
      // committed and answered: no statement of the worker's out but the one held.
      woundDown: async () => {
        const r = await t.pool.query(
          `select (select count(*) from mailer.workers)::int as workers,
                  (select status from mailer.email_outbox where id = $1) as status,
                  (select noted_at >= $2 from mailer.sender_mailboxes where mailbox = 'sender@example.com') as noted`,
          [id, stopAt],
        )
        const { workers, status, noted } = r.rows[0]
        const out = pool.totalCount - pool.idleCount
        return workers === 0 && status === 'pending' && noted === true && out === 1
      },
    })
    expect({ heldWhenStopped: heldAtStop }).toEqual({ heldWhenStopped: false })
  } finally {
    await held.close()
  }
})
