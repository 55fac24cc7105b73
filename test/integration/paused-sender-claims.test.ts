// The claims while MAIL_FROM stands paused (claim_past_paused) and the move of a paused mailbox's rows (defer_paused_rows), at their edges.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { sql } from 'kysely'
import { claimBatch } from '../../src/outbox/claim.ts'
import { pauseMailbox } from '../../src/outbox/mailbox-pause.ts'
import { NONE_SENT_FOR_SECONDS } from '../../src/outbox/none-sent-for.ts'
import { deferPausedRows } from '../../src/outbox/paused-rows.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue, rowOf } from '../support/engine.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const MAIL_FROM = 'sender@example.com'
const HOLD_MS = 5_000
const claim = (limit = 10) =>
  claimBatch(t.db, {
    limit,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
    markStarted: false,
    pausedSender: { key: MAIL_FROM, holdMs: HOLD_MS },
  })
const pause = (mailbox: string, seconds: number) =>
  t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at)
     values ($1, now() + make_interval(secs => $2))
     on conflict (mailbox) do update set next_at = excluded.next_at`,
    [mailbox, seconds],
  )
const from = (address: string) => ({
  to: 'rcpt@example.com',
  from: address,
  subject: 'Hello',
  text: 'Hi there',
})

test('a pause that ends within the hold does not stand: MAIL_FROM’s rows are claimed, to wait it out in place', async () => {
  const id = await enqueue(t)
  await pause(MAIL_FROM, 1)
  const c = await claim()
  expect(c.pausedMs).toBeNull()
  expect(c.leases.map((l) => l.id)).toEqual([id])
})

test('while it stands, a row naming MAIL_FROM’s own address waits with MAIL_FROM’s rows; another sender’s row is claimed', async () => {
  const own = await enqueue(t, from(MAIL_FROM))
  const plain = await enqueue(t)
  const other = await enqueue(t, from('other@example.com'))
  await pause(MAIL_FROM, 60)
  const c = await claim()
  expect(c.pausedMs).toBeGreaterThan(HOLD_MS)
  expect(c.leases.map((l) => l.id)).toEqual([other])
  expect((await rowOf(t, own)).status).toBe('pending')
  expect((await rowOf(t, plain)).status).toBe('pending')
})

test('the probe after a pause never takes a MAIL_FROM row before its sendAt', async () => {
  const later = await enqueue(t, undefined, {
    sendAt: new Date(Date.now() + 3600_000).toISOString(),
  })
  const other = await enqueue(t, from('other@example.com'))
  // The pause is over and MAIL_FROM has no row due: the probe waits for its row, however far off
  // (sql/0057), and rows naming another sender go meanwhile.
  const c = await claim()
  expect(c.pausedMs).toBeNull()
  expect(c.leases.map((l) => l.id)).toEqual([other])
  expect(c.probeInMs).toBeGreaterThan(3_500_000)
  expect((await rowOf(t, later)).status).toBe('pending')
})

test('over before the rows given back to its end are due: none taken early, the claim says when the first is, rows naming another sender go meanwhile; due, it is the probe', async () => {
  const back = await enqueue(t)
  const other = await enqueue(t, from('other@example.com'))
  // Within the hold (over, for the claim); the row due a second past the end, as a settlement
  // that gave it back to that end a second late leaves it.
  await pause(MAIL_FROM, 3)
  await t.pool.query(
    `update mailer.email_outbox
        set send_at = (select next_at from mailer.mailbox_pacing where mailbox = $2) + interval '1 second'
      where id = $1`,
    [back, MAIL_FROM],
  )
  const c = await claim()
  expect(c.pausedMs).toBeNull()
  expect(c.leases.map((l) => l.id)).toEqual([other])
  expect(c.probeInMs).toBeGreaterThan(0)
  expect(c.probeInMs).toBeLessThanOrEqual(4_000)
  expect(c.nextDueInMs).toBe(c.probeInMs!)
  expect((await rowOf(t, back)).status).toBe('pending')
  await t.pool.query(
    `update mailer.email_outbox set send_at = now() - interval '1 minute' where id = $1`,
    [back],
  )
  const probe = await claim()
  expect(probe.probeInMs).toBeNull()
  expect(probe.leases.map((l) => l.id)).toEqual([back])
})

test('a mailbox whose pause is over has no rows moved', async () => {
  const id = await enqueue(t, from('other@example.com'))
  // Due since before the pause ended: a move to that end would put it back in time.
  await t.pool.query(
    `update mailer.email_outbox set send_at = now() - interval '1 hour' where id = $1`,
    [id],
  )
  const before = (await rowOf(t, id)).send_at
  await pause('other@example.com', -60)
  expect(await deferPausedRows(t.db, 'other@example.com')).toBe(0)
  expect((await rowOf(t, id)).send_at).toEqual(before)
  // Standing, the same row moves to the pause's end.
  await pause('other@example.com', 60)
  expect(await deferPausedRows(t.db, 'other@example.com')).toBe(1)
  expect((await rowOf(t, id)).send_at.getTime()).toBeGreaterThan(before.getTime() + 50_000)
})

test('a standing pause moves only rows due before its end, and none whose expiresAt comes first', async () => {
  const due = await enqueue(t, from('other@example.com'))
  const scheduled = await enqueue(t, from('other@example.com'), {
    sendAt: new Date(Date.now() + 1800_000).toISOString(),
  })
  const expiring = await enqueue(t, from('other@example.com'), {
    expiresAt: new Date(Date.now() + 30_000).toISOString(),
  })
  const at = async (id: string) => (await rowOf(t, id)).send_at.getTime()
  const [scheduledAt, expiringAt] = [await at(scheduled), await at(expiring)]
  await pause('other@example.com', 60)
  expect(await deferPausedRows(t.db, 'other@example.com')).toBe(1)
  expect(await at(due)).toBeGreaterThan(Date.now() + 50_000)
  // Scheduled past the pause's end: not brought forward to it.
  expect(await at(scheduled)).toBe(scheduledAt)
  // Left to be claimed and given back, or to expire: moved, it would be due after its expiresAt.
  expect(await at(expiring)).toBe(expiringAt)
})

test("a pause with no end (next_at 'infinity', by hand) moves no row: they stay as they are, for the claim to give back to a recheck", async () => {
  const due = await enqueue(t, from('other@example.com'))
  const scheduled = await enqueue(t, from('other@example.com'), {
    sendAt: new Date(Date.now() + 1800_000).toISOString(),
  })
  const at = async (id: string) => (await rowOf(t, id)).send_at.getTime()
  const before = [await at(due), await at(scheduled)]
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at) values ('other@example.com', 'infinity')`,
  )
  expect(await deferPausedRows(t.db, 'other@example.com').catch((e) => e.message)).toBe(0)
  expect([await at(due), await at(scheduled)]).toEqual(before)
})

test('a moved row says why it waits, in the write that moves it: a wait no try of its own met is renamed `mailbox_paused`, a code its own try met stays; no history', async () => {
  const OTHER = 'other@example.com'
  const waits = {
    untried: [null, null],
    paced: ['mailbox_paced', 'not sent yet: its sender mailbox sends at MAILBOX_RATE_PER_MINUTE'],
    token: ['AADSTS7000215', 'Invalid client secret provided.'],
    unreachable: ['graph_unreachable', 'Graph out of reach'],
    pausedBefore: [
      'mailbox_paused',
      'not sent: its sender mailbox is paused after a provider throttle',
    ],
    refusedItself: ['ErrorAccessDenied', 'Access is denied.'],
    backoff: ['graph_http_500', 'Graph answered 500'],
  } as const
  const ids: Record<string, string> = {}
  for (const [name, [code, words]] of Object.entries(waits)) {
    ids[name] = await enqueue(t, from(OTHER))
    await t.pool.query(
      'update mailer.email_outbox set last_error_code = $2, last_error = $3 where id = $1',
      [ids[name], code, words],
    )
  }
  await pause(OTHER, 60)
  expect(await deferPausedRows(t.db, OTHER, { code: 'ErrorAccessDenied', httpStatus: 403 })).toBe(
    Object.keys(waits).length,
  )
  const { rows } = await t.pool.query<{ id: string; code: string; words: string; later: boolean }>(
    `select id::text, last_error_code as code, last_error as words,
            send_at > now() + interval '50 seconds' as later
       from mailer.email_outbox where id = any($1::bigint[])`,
    [Object.values(ids)],
  )
  const got = Object.fromEntries(
    Object.entries(ids).map(([name, id]) => {
      const r = rows.find((x) => x.id === id)!
      return [name, [r.code, r.words, r.later]]
    }),
  )
  const refusal = [
    'mailbox_paused',
    "not sent: the sender mailbox it names is refused by Graph (HTTP 403 ErrorAccessDenied): paused, its rows tried again at the pause's end",
    true,
  ]
  expect(got).toEqual({
    untried: refusal,
    paced: refusal,
    token: refusal,
    unreachable: refusal,
    pausedBefore: refusal,
    refusedItself: ['ErrorAccessDenied', 'Access is denied.', true],
    backoff: ['graph_http_500', 'Graph answered 500', true],
  })
  const history = await t.pool.query('select count(*)::int as n from mailer.email_attempts')
  expect(history.rows[0].n).toBe(0)
})

test('a throttle’s move names the throttle; an older binary’s call (the one-argument function) moves the row naming nothing, as before', async () => {
  const OTHER = 'other@example.com'
  const mine = await enqueue(t, from(OTHER))
  const older = await enqueue(t, from('older@example.com'))
  await pause(OTHER, 60)
  await pause('older@example.com', 60)
  expect(await deferPausedRows(t.db, OTHER)).toBe(1)
  const moved = await t.pool.query('select mailer.defer_paused_rows($1) as n', [
    'older@example.com',
  ])
  expect(moved.rows[0].n).toBe(1)
  const { rows } = await t.pool.query(
    `select last_error_code as code, last_error as words from mailer.email_outbox
      where id = any($1::bigint[]) order by id`,
    [[mine, older]],
  )
  expect(rows).toEqual([
    {
      code: 'mailbox_paused',
      words: 'not sent: its sender mailbox is paused after a provider throttle',
    },
    { code: null, words: null },
  ])
})

/** status' none-sent-for (none-sent-for.ts), read alone. */
const noneSentFor = async () =>
  (await sql<{ s: number | null }>`select ${NONE_SENT_FOR_SECONDS} as s`.execute(t.db)).rows[0]!.s

/**
 * A quiet outbox meeting a 429: the last send two hours ago; a row naming `mailbox`, created an hour
 * ago, met the 429 just now (given back past the pause's end, its history entry now).
 */
async function quietThenThrottled(mailbox: string): Promise<void> {
  const sent = await enqueue(t)
  const met = await enqueue(t, from(mailbox))
  await t.pool.query(
    `update mailer.email_outbox set status = 'sent', sent_at = now() - interval '2 hours',
            created_at = now() - interval '3 hours' where id = $1`,
    [sent],
  )
  await t.pool.query(
    `update mailer.email_outbox set send_at = now() + interval '10 minutes 1 second',
            created_at = now() - interval '1 hour',
            last_error_code = 'ApplicationThrottled', last_error = 'throttled' where id = $1`,
    [met],
  )
  await t.pool.query(
    `insert into mailer.email_attempts (outbox_id, attempt, worker_id, started_at, finished_at, outcome, error_code)
     values ($1, 0, 'w1', now(), now(), 'throttled', 'ApplicationThrottled')`,
    [met],
  )
}

test("a row scheduled ahead that a pause moved does not read, in status' none-sent-for, as waiting since its creation", async () => {
  // A quiet outbox meeting a 429 (Retry-After 10 minutes); another row of the mailbox, created an
  // hour ago for two minutes from now, is moved to the pause's end and named.
  const OTHER = 'other@example.com'
  await quietThenThrottled(OTHER)
  const scheduled = await enqueue(t, from(OTHER), {
    sendAt: new Date(Date.now() + 120_000).toISOString(),
  })
  await t.pool.query(
    `update mailer.email_outbox set created_at = now() - interval '1 hour' where id = $1`,
    [scheduled],
  )
  await pause(OTHER, 600)
  expect(await noneSentFor()).toBeLessThan(60)
  expect(await deferPausedRows(t.db, OTHER)).toBe(1)
  expect((await rowOf(t, scheduled)).last_error_code).toBe('mailbox_paused')
  // Waiting since the 429 (moments), not since the moved row's creation an hour ago: that read
  // made status exit 5, "no row sent for 3600 s ... most likely a Graph outage", at one 429.
  expect(await noneSentFor()).toBeLessThan(60)
  // A row with history (given back before, its entry older than the newest send) is not one the
  // move alone named: it still dates from its creation, a stall it shows not hidden.
  await t.pool.query(
    `insert into mailer.email_attempts (outbox_id, attempt, worker_id, started_at, finished_at, outcome, error_code)
     values ($1, 0, 'w1', now() - interval '150 minutes', now() - interval '150 minutes', 'throttled', 'mailbox_paused')`,
    [scheduled],
  )
  expect(Math.round((await noneSentFor())! / 60)).toBe(60)
})

test("a throttle met within a longer refusal's pause leaves the pause the refusal's, and its move words the rows by the refusal, not the 429", async () => {
  const OTHER = 'other@example.com'
  const refused = { code: 'ErrorAccessDenied', httpStatus: 403 }
  const first = await enqueue(t, from(OTHER))
  await pauseMailbox(t.db, { mailbox: OTHER, ms: 300_000, cause: 'refused' })
  expect(await deferPausedRows(t.db, OTHER, refused)).toBe(1)
  // Enqueued while the refusal stands; and one already named by it, due before its end (as a row
  // the refusal's move skipped, locked, would be once a claim gave it back to a shorter wait).
  const since = await enqueue(t, from(OTHER))
  const named = await enqueue(t, from(OTHER))
  const refusalWords =
    "not sent: the sender mailbox it names is refused by Graph (HTTP 403 ErrorAccessDenied): paused, its rows tried again at the pause's end"
  await t.pool.query(
    `update mailer.email_outbox set last_error_code = 'mailbox_paused', last_error = $2 where id = $1`,
    [named, refusalWords],
  )
  // Then a send in flight meets a 429 (Retry-After: 60).
  await pauseMailbox(t.db, { mailbox: OTHER, ms: 60_000, cause: 'throttle' })
  expect(await deferPausedRows(t.db, OTHER)).toBe(2)
  const pause = await t.pool.query(
    `select pause_reason, next_at > now() + interval '250 seconds' as refusals_end
       from mailer.mailbox_pacing where mailbox = $1`,
    [OTHER],
  )
  expect(pause.rows).toEqual([{ pause_reason: 'refused', refusals_end: true }])
  const { rows } = await t.pool.query(
    `select last_error_code as code, last_error as words,
            send_at > now() + interval '250 seconds' as at_refusals_end
       from mailer.email_outbox where id = any($1::bigint[]) order by id`,
    [[first, since, named]],
  )
  expect(rows).toEqual([
    { code: 'mailbox_paused', words: refusalWords, at_refusals_end: true },
    {
      code: 'mailbox_paused',
      words:
        "not sent: the sender mailbox it names is refused by Graph: paused, its rows tried again at the pause's end",
      at_refusals_end: true,
    },
    { code: 'mailbox_paused', words: refusalWords, at_refusals_end: true },
  ])
})

test("a row scheduled ahead that a pacing turn gave back does not read, in status' none-sent-for, as waiting since its creation", async () => {
  // A quiet outbox meeting a 429; another row of the mailbox, created an hour ago for a minute ago,
  // was claimed when due and given back to its pacing turn five minutes on (mailbox_paced, no
  // history: the send_at it had is overwritten).
  const OTHER = 'other@example.com'
  await quietThenThrottled(OTHER)
  const paced = await enqueue(t, from(OTHER))
  await t.pool.query(
    `update mailer.email_outbox set created_at = now() - interval '1 hour', send_at = now() + interval '5 minutes',
            last_error_code = 'mailbox_paced', last_error = 'paced' where id = $1`,
    [paced],
  )
  await pause(OTHER, 600)
  // Waiting since the 429 (moments): the paced row waits its turn and dates nothing; once the turn
  // has passed it is dated by it.
  expect(await noneSentFor()).toBeLessThan(60)
  await t.pool.query(
    `update mailer.email_outbox set send_at = now() - interval '2 minutes' where id = $1`,
    [paced],
  )
  expect(Math.round((await noneSentFor())! / 60)).toBe(2)
})
