// MAIL_FROM's pacing turn under the newest worker's longer interval is a turn, not a pause: the claim's guard (sql/0062) counts a pause only.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import { takePacing } from '../../src/outbox/mailbox-pacing.ts'
import { pauseMailbox } from '../../src/outbox/mailbox-pause.ts'
import { notePacingRate } from '../../src/outbox/pacing-rate.ts'
import { mailboxKey } from '../../src/outbox/send-gate.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
const MAIL_FROM = mailboxKey('sender@example.com')
// A worker started at 10 a minute: its hold is its interval, 6 s (pg-send-gate pausedBeyondMs).
const HOLD_MS = 6_000

/** A worker's claim guarded by MAIL_FROM's pause, as an unpaused Graph worker's with MAIL_FROM. */
const guardedClaim = () =>
  claimBatch(t.db, {
    limit: 10,
    workerId: 'w1',
    leaseSeconds: 60,
    defaultMaxAttempts: 3,
    mailFromGuard: { key: MAIL_FROM, holdMs: HOLD_MS },
  })

const otherSendersRow = () =>
  enqueue(t, { from: 'own@example.com', to: 'rcpt@example.com', subject: 'Hi', text: 'Hi' })

test("MAIL_FROM's turn taken under a newer worker's rate of 2 a minute (30 s) is no pause for a worker at 10 a minute: its claim takes another sender's due row", async () => {
  // The newer worker's start noted its rate; this worker sends MAIL_FROM's row at its turn.
  await notePacingRate(t.db, { intervalMs: 30_000 })
  expect<unknown>(await takePacing(t.db, { mailbox: MAIL_FROM, intervalMs: HOLD_MS })).toEqual({
    waitMs: 0,
    intervalMs: 30_000,
    turn: expect.any(String),
  })
  const id = await otherSendersRow()
  const claimed = await guardedClaim()
  expect([claimed.owed, claimed.leases.map((l) => l.id)]).toEqual([undefined, [id]])
})

test('a throttle past the hold still guards the claim, as does one past a turn of the newer rate', async () => {
  await notePacingRate(t.db, { intervalMs: 30_000 })
  await takePacing(t.db, { mailbox: MAIL_FROM, intervalMs: HOLD_MS })
  await otherSendersRow()
  await pauseMailbox(t.db, { mailbox: MAIL_FROM, ms: 300_000 })
  const claimed = await guardedClaim()
  expect([claimed.owed, claimed.leases.length]).toEqual([true, 0])
})

test("a throttle past the hold, the rate this worker's, guards the claim", async () => {
  await notePacingRate(t.db, { intervalMs: HOLD_MS })
  await otherSendersRow()
  await pauseMailbox(t.db, { mailbox: MAIL_FROM, ms: 20_000 })
  const claimed = await guardedClaim()
  expect([claimed.owed, claimed.leases.length]).toEqual([true, 0])
})

test("MAIL_FROM's turn under this worker's own rate of 10 a minute is no pause: its hold is its interval", async () => {
  await notePacingRate(t.db, { intervalMs: HOLD_MS })
  await takePacing(t.db, { mailbox: MAIL_FROM, intervalMs: HOLD_MS })
  const id = await otherSendersRow()
  const claimed = await guardedClaim()
  expect([claimed.owed, claimed.leases.map((l) => l.id)]).toEqual([undefined, [id]])
})

test("a worker paused by MAIL_FROM's throttle finds it over once MAIL_FROM's next turn under the newer rate is all that stands: its claim probes, and names no pause", async () => {
  await notePacingRate(t.db, { intervalMs: 30_000 })
  // The throttle's end: another worker's send took MAIL_FROM's turn under the newer rate.
  await takePacing(t.db, { mailbox: MAIL_FROM, intervalMs: HOLD_MS })
  const own = await enqueue(t)
  await otherSendersRow()
  const claimed = await claimBatch(t.db, {
    limit: 10,
    workerId: 'w1',
    leaseSeconds: 60,
    defaultMaxAttempts: 3,
    pausedSender: { key: MAIL_FROM, holdMs: HOLD_MS },
  })
  expect([claimed.pausedMs, claimed.leases.map((l) => l.id)]).toEqual([null, [own]])
})

test("a throttle within the mailbox's next turn still holds a send once a newer worker's faster rate brings that turn due early", async () => {
  // The mailbox's last turn, at 1 a minute, was taken 2 s ago; Graph then throttled a send for 20 s
  // (pauseMailbox leaves the turn, 58 s off, standing for it).
  await notePacingRate(t.db, { intervalMs: 60_000 })
  await takePacing(t.db, { mailbox: MAIL_FROM, intervalMs: 60_000 })
  await t.pool.query(
    `update mailer.mailbox_pacing set next_at = next_at - interval '2 seconds' where mailbox = $1`,
    [MAIL_FROM],
  )
  await pauseMailbox(t.db, { mailbox: MAIL_FROM, ms: 20_000 })
  // A newer worker starts at 60 a minute: the turn is due 1 s after the last one, inside the throttle.
  await notePacingRate(t.db, { intervalMs: 1_000 })
  const taken = await takePacing(t.db, { mailbox: MAIL_FROM, intervalMs: 1_000 })
  expect(taken.waitMs).toBeGreaterThan(15_000)
  expect(taken.waitMs).toBeLessThanOrEqual(20_000)
})
