// Every statement that reads a pause's (or a pacing turn's) remainder answers a pause with no end (next_at 'infinity', by hand) bounded: no reader meets Infinity.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import { ENDLESS_PAUSE_RECHECK_MS } from '../../src/outbox/endless-pause.ts'
import { reservePacing, takePacing } from '../../src/outbox/mailbox-pacing.ts'
import { mailboxPausedFor } from '../../src/outbox/mailbox-pause.ts'
import { mailboxPauses } from '../../src/outbox/mailbox-pauses.ts'
import { startSends } from '../../src/outbox/start-send.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { claimPastPause, enqueueIn } from '../support/paused-claim-rows.ts'

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
  expect(await mailboxPauses(t.db)).toMatchObject({
    mailboxes: 1,
    refused: 0,
    longestSeconds: null,
  })
})

// claim_past_paused's differences outside mailer.ms_until (sql/0157: the probe's due time, the
// next keyed row's; infinite-time-arithmetic.test.ts's FINITE list) take their sides from send_at
// (finite: email_outbox_send_at_check) or from the kept time and hints only where a row is pending
// at that time. Every infinite value a hand can write there leaves them finite: on Postgres 16 one
// infinite side would fail the claim (22008), where CI runs this file too.
test("MAIL_FROM's owed probe with every time by hand infinite (its pause lifted to '-infinity', another mailbox paused to 'infinity', the kept time and hints 'infinity'): the claim answers its row's time, finite", async () => {
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval, probe_owed, probe_due_at)
     values ($1, '-infinity', interval '0', true, 'infinity'), ('other@example.com', 'infinity', interval '0', false, null)`,
    [MAIL_FROM],
  )
  await t.pool.query(
    `insert into mailer.probe_due_hints (send_at) values ('infinity'), ('-infinity')`,
  )
  await enqueueIn(t.pool, 3600, null)
  await enqueueIn(t.pool, 7200, 'another@example.com')
  // The hint MAIL_FROM's row wrote as it was enqueued (0075's trigger) removed: only infinite ones left.
  await t.pool.query('delete from mailer.probe_due_hints where isfinite(send_at)')
  // The kept time 'infinity' has no row pending at it: searched, MAIL_FROM's row's time kept.
  const searched = await claimPastPause(t.db, MAIL_FROM)
  const keptAt = await t.pool.query(
    `select p.probe_due_at = o.send_at as kept from mailer.mailbox_pacing p, mailer.email_outbox o
      where p.mailbox = $1 and o.sender_key is null`,
    [MAIL_FROM],
  )
  expect(keptAt.rows).toEqual([{ kept: true }])
  // The kept time read (its row pending at it), with an infinite hint written since.
  await t.pool.query(`insert into mailer.probe_due_hints (send_at) values ('infinity')`)
  const kept = await claimPastPause(t.db, MAIL_FROM)
  for (const c of [searched, kept]) {
    expect(c.leases).toEqual([])
    expect(c.probeInMs).toBeGreaterThan(3_500_000)
    expect(c.probeInMs).toBeLessThanOrEqual(3_600_000)
    expect(c.nextDueInMs).toBe(c.probeInMs ?? null)
  }
  // Their sides' source: no row's send_at may be infinite, so neither the kept time nor a hint is.
  for (const at of ['infinity', '-infinity'])
    await expect(
      t.pool.query(`update mailer.email_outbox set send_at = $1::timestamptz`, [at]),
    ).rejects.toMatchObject({ code: '23514', constraint: 'email_outbox_send_at_check' })
})
