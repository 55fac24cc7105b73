// Every statement that reads a pause's (or a pacing turn's) remainder answers a pause with no end (next_at 'infinity', by hand) bounded: no reader meets Infinity.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import { ENDLESS_PAUSE_RECHECK_MS } from '../../src/outbox/endless-pause.ts'
import { mailboxPausedFor, reservePacing, takePacing } from '../../src/outbox/mailbox-pacing.ts'
import { mailboxPauses } from '../../src/outbox/mailbox-pauses.ts'
import { startSends } from '../../src/outbox/start-send.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const MAIL_FROM = 'sender@example.com'

/** MAIL_FROM paused to 'infinity' by hand: a throttle's (0), an older binary's (null), or over a turn. */
const pauseForever = (turn: string) =>
  t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval)
     values ($1, 'infinity', ${turn})`,
    [MAIL_FROM],
  )

for (const turn of [`interval '0'`, 'null', `interval '1 second'`])
  test(`turn_interval ${turn}: a pacing turn taken, reserved and the pause read each answer a recheck, not Infinity`, async () => {
    await pauseForever(turn)
    const taken = await takePacing(t.db, { mailbox: MAIL_FROM, intervalMs: 1_000 })
    const read = await mailboxPausedFor(t.db, { mailbox: MAIL_FROM })
    const reserved = await reservePacing(t.db, { mailbox: MAIL_FROM, intervalMs: 1_000 })
    expect<unknown>({ taken: taken.waitMs, read: read.waitMs }).toEqual({
      taken: ENDLESS_PAUSE_RECHECK_MS,
      read: ENDLESS_PAUSE_RECHECK_MS,
    })
    // A turn reserved counts from now(): within three intervals (two past the next send).
    expect(Number.isFinite(reserved)).toBe(true)
    expect(reserved).toBeLessThanOrEqual(3_000)
  })

test("the claim past MAIL_FROM's endless pause and the last check answer a recheck for it", async () => {
  await enqueue(t)
  const { leases } = await claimBatch(t.db, {
    limit: 1,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
  })
  await pauseForever(`interval '0'`)
  const checked = await startSends(
    t.db,
    leases.map((l) => ({ id: l.id, token: l.token, mailbox: MAIL_FROM })),
  )
  const claimed = await claimBatch(t.db, {
    limit: 10,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
    pausedSender: { key: MAIL_FROM, holdMs: 5_000 },
  })
  expect<unknown>({ checked: [...checked.paused.values()], claimed: claimed.pausedMs }).toEqual({
    checked: [ENDLESS_PAUSE_RECHECK_MS],
    claimed: ENDLESS_PAUSE_RECHECK_MS,
  })
})

test('the pauses status reads count an endless pause with no longest remainder (null), never Infinity', async () => {
  await pauseForever(`interval '0'`)
  expect(await mailboxPauses(t.db)).toEqual({
    mailboxes: 1,
    longestSeconds: null,
  })
})
