// A mailbox paused to 'infinity' by hand: a row claimed just before goes back cleanly, paused, and goes out once the pause is lifted.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { systemClock } from '../../src/clock.ts'
import { createLogger } from '../../src/log.ts'
import { reservePacing } from '../../src/outbox/mailbox-pacing.ts'
import { createPgSendGate } from '../../src/outbox/pg-send-gate.ts'
import type { SendGate } from '../../src/outbox/send-gate.ts'
import { PAUSED_CODE } from '../../src/outbox/settle-item.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })

/** The Postgres gate, MAIL_FROM paused to 'infinity' (as an operator's UPDATE) before its first acquire: after the claim. */
function gatePausingForever(ratePerMinute: number): SendGate {
  const g = createPgSendGate({
    db: t.db,
    clock: systemClock,
    log: createLogger('warn', () => {}),
    holder: 'w',
    maxConcurrency: 2,
    ratePerMinute,
    slotTtlMs: 30_000,
    maxWaitMs: 20,
  })
  let paused = false
  return {
    ...g,
    async acquire(mailbox, signal, readPause, rowId) {
      if (!paused) {
        paused = true
        await t.pool.query(
          `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval)
           values ('sender@example.com', 'infinity', interval '0')
           on conflict (mailbox) do update set next_at = 'infinity', turn_interval = interval '0'`,
        )
      }
      return g.acquire(mailbox, signal, readPause, rowId)
    },
  }
}

for (const rate of [0, 60])
  test(`MAILBOX_RATE_PER_MINUTE=${rate}: a row claimed just before a pause to 'infinity' goes back paused, lease given up, no error; sent once when lifted`, async () => {
    const lines: { level: string; msg: string; code?: string }[] = []
    const engine = createTestEngine(t, {
      deps: {
        gate: gatePausingForever(rate),
        log: createLogger('warn', (l) => lines.push(JSON.parse(l))),
      },
    })
    const id = await enqueue(t)
    try {
      await engine.start()
      const back = await pollUntil(async () => {
        const r = await t.pool.query(
          `select status, last_error_code, lease_token is null as unleased,
                  send_at > now() and send_at < 'infinity' as later
             from mailer.email_outbox where id = $1`,
          [id],
        )
        return r.rows[0].last_error_code !== null ? r.rows[0] : undefined
      }, 20_000).catch(async () => ({ timedOut: true, lines }))
      expect(back).toEqual({
        status: 'pending',
        last_error_code: PAUSED_CODE,
        unleased: true,
        later: true,
      })
      expect(lines).toEqual([])
      expect(engine.sender.calls).toEqual([])
      // Lifted by hand: the row, due again, is sent once.
      await t.pool.query(
        `with p as (update mailer.mailbox_pacing set next_at = now() - interval '1 minute'
                     where mailbox = 'sender@example.com' returning 1)
         update mailer.email_outbox set send_at = now() where id = $1`,
        [id],
      )
      engine.drainer.wake()
      await engine.events.waitFor(settledFor(id, 'sent'), 20_000)
      expect(engine.sender.calls.map((c) => c.outboxId)).toEqual([id])
      expect(lines).toEqual([])
    } finally {
      await engine.stop()
    }
  })

test("a pacing turn reserved during a pause to 'infinity' leaves no endless horizon: once lifted, turns come one interval apart again", async () => {
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval)
     values ('sender@example.com', 'infinity', interval '0')`,
  )
  await reservePacing(t.db, { mailbox: 'sender@example.com', intervalMs: 1_000 })
  await t.pool.query(
    `update mailer.mailbox_pacing set next_at = now() where mailbox = 'sender@example.com'`,
  )
  // Read before and after: the turn lies within three intervals of now (two past the next send).
  const turn = await reservePacing(t.db, { mailbox: 'sender@example.com', intervalMs: 1_000 })
  const horizon = await t.pool.query(
    `select isfinite(next_at) as finite from mailer.mailbox_pacing where mailbox = 'queue sender@example.com'`,
  )
  expect({ turn, horizon: horizon.rows }).toEqual({
    turn: expect.any(Number),
    horizon: [{ finite: true }],
  })
  expect(turn).toBeLessThanOrEqual(3_000)
})
