// The live statement's mailboxes a pause holds now, pending rows a pacing turn or a pause holds back, and pending rows past their expiresAt: in /metrics and /v1/stats.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { createMetrics } from '../../src/api/metrics.ts'
import { systemClock } from '../../src/clock.ts'
import { reservePacing, takePacing } from '../../src/outbox/mailbox-pacing.ts'
import { pauseMailbox } from '../../src/outbox/mailbox-pause.ts'
import { deferPausedRows } from '../../src/outbox/paused-rows.ts'
import { mailboxKey } from '../../src/outbox/send-gate.ts'
import { liveStats } from '../../src/outbox/stats.ts'
import { useTestDb } from '../support/db.ts'
import { fakeHealth } from './support/fake-health.ts'
import { appOnDefault, enqueueSql, send } from './support/harness.ts'
import { token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const named = (from: string) => ({
  to: 'ada@example.com',
  from,
  subject: 'Hi',
  text: 'Hello',
})

async function scrape() {
  const health = fakeHealth(['default'])
  const metrics = createMetrics({
    databases: [{ name: 'default', db: t.db, statements: t.statements }],
    health,
  })
  // The answer as the app gives it: send() would first build a checker of the app's whole document,
  // per app (4–14 s of a loaded machine's 30 s, twice in the first test); /metrics is plain text.
  const res = await appOnDefault(t, { health, metrics }).app.request('/metrics')
  expect(res.status).toBe(200)
  const text = await res.text()
  const gauge = (name: string) =>
    Number(new RegExp(`^${name}\\{db="default"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN)
  return {
    paused: gauge('outbox_mailboxes_paused'),
    held: gauge('outbox_pending_held_back'),
    pastExpiry: gauge('outbox_pending_past_expiry'),
  }
}

test('a mailbox a throttle pauses counts while its pause stands; one only paced, a pacing horizon and the rate noted do not', async () => {
  expect(await scrape()).toEqual({ paused: 0, held: 0, pastExpiry: 0 })
  // A pause past any turn (Retry-After: 600), and one within a turn (throttled_until, sql/0112).
  await pauseMailbox(t.db, { mailbox: mailboxKey('long@example.com'), ms: 600_000 })
  await takePacing(t.db, { mailbox: mailboxKey('turn@example.com'), intervalMs: 60_000 })
  await pauseMailbox(t.db, { mailbox: mailboxKey('turn@example.com'), ms: 20_000 })
  // Only paced, with a horizon of turns reserved: no pause.
  await takePacing(t.db, { mailbox: mailboxKey('paced@example.com'), intervalMs: 60_000 })
  await reservePacing(t.db, { mailbox: mailboxKey('paced@example.com'), intervalMs: 60_000 })
  // A pause that has ended.
  await pauseMailbox(t.db, { mailbox: mailboxKey('over@example.com'), ms: 1 })
  await t.pool.query(
    `update mailer.mailbox_pacing set next_at = now() - interval '1 second',
       throttled_until = now() - interval '1 second' where mailbox = $1`,
    [mailboxKey('over@example.com')],
  )
  // An older binary's rows (no turn_interval): a turn within the rate in force (2 s), or a pause.
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval) values
       ('pacing rate', now() - interval '1 hour', interval '2 seconds'),
       ('older-turn@example.com', now() + interval '1 second', null),
       ('older-pause@example.com', now() + interval '10 minutes', null)`,
  )
  expect((await scrape()).paused).toBe(3)
  expect((await liveStats(t.db, null)).pausedMailboxes).toBe(3)
})

test('pending rows a pacing turn or a pause moved later count as held back; due rows and rows scheduled by the caller do not', async () => {
  const paced = await enqueueSql(t.pool)
  const givenBack = await enqueueSql(t.pool)
  const deferred = await enqueueSql(t.pool, {}, named('busy@example.com'))
  const deferredByOlder = await enqueueSql(t.pool, {}, named('older-busy@example.com'))
  await enqueueSql(t.pool, { sendAt: new Date(Date.now() + 3_600_000).toISOString() })
  await enqueueSql(t.pool)
  // As giveBackPaused leaves them: a reserved pacing turn, a pause's end.
  await t.pool.query(
    `update mailer.email_outbox set send_at = now() + interval '2 minutes',
       last_error_code = case when id = $1 then 'mailbox_paced' else 'mailbox_paused' end
     where id in ($1, $2)`,
    [paced, givenBack],
  )
  // A named mailbox's pause moves its rows to the pause's end, named `mailbox_paused` (0200); an
  // older binary's move (0104's one-argument function) names none: held by the pause alone.
  const keyOf = async (id: string) =>
    (
      await t.pool.query<{ k: string }>(
        'select sender_key as k from mailer.email_outbox where id = $1',
        [id],
      )
    ).rows[0]!.k
  const [key, olderKey] = [await keyOf(deferred), await keyOf(deferredByOlder)]
  await pauseMailbox(t.db, { mailbox: key, ms: 600_000 })
  await pauseMailbox(t.db, { mailbox: olderKey, ms: 600_000 })
  expect(await deferPausedRows(t.db, key)).toBe(1)
  expect(
    (await t.pool.query('select mailer.defer_paused_rows($1) as n', [olderKey])).rows[0].n,
  ).toBe(1)
  expect(await scrape()).toEqual({ paused: 2, held: 4, pastExpiry: 0 })
  const live = await liveStats(t.db, null)
  expect({ pending: live.pending, held: live.heldBackPending }).toEqual({ pending: 6, held: 4 })
})

test("rows given back to their mailbox's pause by the send that met it or by the gate, due a few milliseconds past its end, count as held back (so does a backoff within 5 s past it: the bound); rows the caller scheduled there do not", async () => {
  const MAIL_FROM = 'outbox@example.com'
  // The worker whose MAIL_FROM sends the rows naming none (sql/0079: its pause key), live.
  await t.pool.query(
    `insert into mailer.workers (id, host, pid, version, probe_mailbox, lease_seconds)
     values ('w', 'h', 1, 'v', $1, 60)`,
    [mailboxKey(MAIL_FROM)],
  )
  await pauseMailbox(t.db, { mailbox: mailboxKey(MAIL_FROM), ms: 30_000 })
  const busy = mailboxKey('busy@example.com')
  await pauseMailbox(t.db, { mailbox: busy, ms: 30_000 })
  const metOwn = await enqueueSql(t.pool)
  const turnedAway = await enqueueSql(t.pool)
  const metNamed = await enqueueSql(t.pool, {}, named('busy@example.com'))
  const backoff = await enqueueSql(t.pool)
  const backoffWithinSkew = await enqueueSql(t.pool)
  const scheduled = await enqueueSql(t.pool, {}, named('busy@example.com'))
  const scheduledOwn = await enqueueSql(t.pool)
  // As settle.ts leaves them: due at now() plus the pause's length, the settlement's now() a few
  // milliseconds after the pause's (its statement came later).
  const at = (id: string, code: string | null, past: string) =>
    t.pool.query(
      `update mailer.email_outbox o set last_error_code = $2,
              send_at = (select p.next_at from mailer.mailbox_pacing p
                          where p.mailbox = coalesce(o.sender_key, $4)) + $3::interval
        where o.id = $1`,
      [id, code, past, mailboxKey(MAIL_FROM)],
    )
  await at(metOwn, 'ServiceUnavailable', '9 milliseconds')
  await at(turnedAway, 'mailbox_paused', '23 milliseconds')
  await at(metNamed, 'ApplicationThrottled', '5 milliseconds')
  // A retry's backoff a minute past the pause waits for its own time, not the pause.
  await at(backoff, 'InternalServerError', '1 minute')
  // The bound (stats.ts GIVEN_BACK_SKEW): one due 4 s past it cannot be told from the row that met
  // the throttle, and counts while the pause stands.
  await at(backoffWithinSkew, 'InternalServerError', '4 seconds')
  // Untried rows the caller scheduled just past the pauses' ends (send_at at enqueue).
  await at(scheduled, null, '5 milliseconds')
  await at(scheduledOwn, null, '5 milliseconds')
  expect(await scrape()).toEqual({ paused: 2, held: 4, pastExpiry: 0 })
  const live = await liveStats(t.db, null)
  expect({ pending: live.pending, held: live.heldBackPending }).toEqual({ pending: 7, held: 4 })
})

test('/v1/stats says both; a token confined to a tenant reads its own held rows and no pause count', async () => {
  await pauseMailbox(t.db, { mailbox: mailboxKey('long@example.com'), ms: 600_000 })
  const held = await enqueueSql(t.pool, { tenant: 'acme' })
  await t.pool.query(
    `update mailer.email_outbox set send_at = now() + interval '2 minutes', last_error_code = 'mailbox_paced'
      where id = $1`,
    [held],
  )
  const { app } = appOnDefault(t)
  const read = async (tk: string) => {
    const r = await send(app, 'GET', '/v1/stats', { token: tk })
    const db = (r.body as { databases: Record<string, unknown>[] }).databases[0]!
    return { paused: db.pausedMailboxes, held: db.heldBackPending }
  }
  expect(await read(await token())).toEqual({ paused: 1, held: 1 })
  expect(await read(await token({ tenant: 'acme' }))).toEqual({ paused: null, held: 1 })
  expect(await read(await token({ tenant: 'beta' }))).toEqual({ paused: null, held: 0 })
})

test("a pending row past its expiresAt (one waiting for its interrupted send's lookup) counts in outbox_pending_past_expiry and /v1/stats pastExpiryPending, as its tenant sees it; rows not expired or finished do not", async () => {
  // As settle.ts leaves a lookup too early past the expiresAt: pending, marked, due after it.
  const waiting = await enqueueSql(t.pool, {
    tenant: 'acme',
    expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
  })
  const finished = await enqueueSql(t.pool, {
    expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
  })
  await enqueueSql(t.pool, { expiresAt: new Date(Date.now() + 3_600_000).toISOString() })
  await enqueueSql(t.pool)
  await t.pool.query(
    `update mailer.email_outbox
        set attempts = 1, send_started_at = now() - interval '3 minutes',
            expires_at = now() - interval '1 minute', send_at = now() + interval '20 seconds',
            last_error_code = 'lookup_too_early',
            status = case when id = $2 then 'failed' else status end
      where id in ($1, $2)`,
    [waiting, finished],
  )
  expect((await scrape()).pastExpiry).toBe(1)
  expect((await liveStats(t.db, null)).pastExpiryPending).toBe(1)
  const { app } = appOnDefault(t)
  const read = async (tk: string) => {
    const r = await send(app, 'GET', '/v1/stats', { token: tk })
    return (r.body as { databases: Record<string, unknown>[] }).databases[0]!.pastExpiryPending
  }
  expect([
    await read(await token()),
    await read(await token({ tenant: 'acme' })),
    await read(await token({ tenant: 'beta' })),
  ]).toEqual([1, 1, 0])
})

test('an idle scrape reuses no read that found a mailbox paused: its pause ends with no engine event', async () => {
  let now = Date.now()
  const metrics = createMetrics({
    databases: [{ name: 'default', db: t.db, statements: t.statements }],
    health: fakeHealth(['default']),
    quietReuseMs: 60_000,
    clock: { now: () => now, sleep: systemClock.sleep },
  })
  const paused = async () =>
    /^outbox_mailboxes_paused\{db="default"\} (\S+)$/m.exec(await metrics.render())?.[1]
  await pauseMailbox(t.db, { mailbox: mailboxKey('long@example.com'), ms: 600_000 })
  expect(await paused()).toBe('1')
  // Lifted by hand (README), or run out: nothing any engine hears.
  await t.pool.query(
    `update mailer.mailbox_pacing set next_at = now() - interval '1 second',
       throttled_until = now() - interval '1 second'`,
  )
  now += 15_000
  expect(await paused()).toBe('0')
})
