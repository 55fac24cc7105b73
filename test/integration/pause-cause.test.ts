// A mailbox's pause keeps its cause (0172): status, /v1/stats and /metrics say which pauses are a provider throttle and which Graph refusing the mailbox, whatever codes the pending rows hold.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { createMetrics } from '../../src/api/metrics.ts'
import { systemClock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { reservePacing } from '../../src/outbox/mailbox-pacing.ts'
import { pauseMailbox } from '../../src/outbox/mailbox-pause.ts'
import { oweProbe } from '../../src/outbox/owed-probe.ts'
import { RATE_IN_FORCE } from '../../src/outbox/pacing-rate.ts'
import { pauseEnd } from '../../src/outbox/paused-now.ts'
import { createPgSendGate } from '../../src/outbox/pg-send-gate.ts'
import { mailboxKey } from '../../src/outbox/send-gate.ts'
import { renderStatusTable } from '../../src/status/status-table.ts'
import { fakeHealth } from '../api/support/fake-health.ts'
import { appOnDefault } from '../api/support/harness.ts'
import { bearer, token } from '../api/support/tokens.ts'
import { useTestDb } from '../support/db.ts'
import { defaultStatus } from '../support/default-status.ts'
import { createTestEngine, enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { guideAlertRules } from '../support/guide-alert-rules.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const gate = () =>
  createPgSendGate({
    db: t.db,
    clock: systemClock,
    log: silentLogger,
    holder: 'cause',
    maxConcurrency: 2,
    ratePerMinute: 0,
    slotTtlMs: 30_000,
    maxWaitMs: 20,
  })

const REFUSED = { code: 'ErrorInvalidUser', httpStatus: 404 }

/** `n` pending rows due in a minute whose last try met `code`. */
const pending = (n: number, code: string) =>
  t.pool.query(
    `insert into mailer.email_outbox (message, status, send_at, last_error_code, last_error)
     select '{"to":["a@example.com"],"subject":"s","text":"t"}'::jsonb, 'pending',
            now() + interval '1 minute', $1::text, 'met an error'
       from generate_series(1, $2::int)`,
    [code, n],
  )

/** What each reader says of the paused mailboxes: status (--json and the table's line), /v1/stats, /metrics. */
async function readers() {
  const status = await defaultStatus(t)
  const table = renderStatusTable({
    version: 'test',
    thresholds: { maxPendingAgeSeconds: 600, leaseSeconds: 60 },
    exitCode: 0,
    warnings: [],
    databases: [status],
  })
  const res = await appOnDefault(t).app.request('/v1/stats', { headers: bearer(await token()) })
  expect(res.status).toBe(200)
  const stats = (await res.json()) as {
    databases: {
      pausedMailboxes: number
      pausedMailboxesRefused: number | null
      refusedMailboxPending: number | null
    }[]
  }
  const metrics = await createMetrics({
    databases: [{ name: 'default', db: t.db, statements: t.statements }],
    health: fakeHealth(['default']),
  }).render()
  const gauge = (name: string) =>
    Number(new RegExp(`^${name}\\{db="default"\\} (\\S+)$`, 'm').exec(metrics)?.[1])
  return {
    line: table
      .split('\n')
      .find((l) => l.includes('mailbox(es) paused'))
      ?.replace(/for \S+ more$/, 'for … more'),
    json: status.pausedMailboxes,
    stats: {
      pausedMailboxes: stats.databases[0]?.pausedMailboxes,
      pausedMailboxesRefused: stats.databases[0]?.pausedMailboxesRefused,
      refusedMailboxPending: stats.databases[0]?.refusedMailboxPending,
    },
    gauges: {
      paused: gauge('outbox_mailboxes_paused'),
      refused: gauge('outbox_mailboxes_paused_refused'),
      refusedPending: gauge('outbox_refused_mailbox_pending'),
    },
    // The deploy guide's "Mailbox refused" rule: each gauge an arm of it fires on alone (`max(…) > 0`).
    rule: Object.fromEntries(
      [...mailboxRefusedRule.matchAll(/max\((outbox_\w+)\) > 0/g)].map(([, name]) => [
        name,
        gauge(name!),
      ]),
    ),
  }
}

const mailboxRefusedRule = guideAlertRules().find((r) => r.alert === 'Mailbox refused')!.rule

const CHECK =
  "check MAIL_FROM or the rows' own from, and that the mailbox exists, is licensed and the app may send from it"

test('a mailbox Graph refuses beside one throttled is said as a refusal, its code rare among the pending rows', async () => {
  const g = gate()
  await g.pause('refused@example.com', 300_000, REFUSED)
  await g.pause('busy@example.com', 60_000)
  // The throttle's rows outnumber the refusal's one: its code is not among the five shown.
  for (const [n, code] of [
    [6, 'ApplicationThrottled'],
    [5, 'mailbox_paused'],
    [4, 'graph_unreachable'],
    [3, 'http_503'],
    [2, 'ServerBusy'],
    [1, 'ErrorInvalidUser'],
  ] as const) {
    await pending(n, code)
  }
  expect(await readers()).toEqual({
    line: `default: 2 mailbox(es) paused: 1 by a provider throttle, 1 by Graph refusing it (${CHECK}), 0 pending row(s) sending from a refused one, the longest for … more`,
    json: { count: 2, longestSeconds: expect.any(Number), refused: 1, refusedPending: 0 },
    stats: { pausedMailboxes: 2, pausedMailboxesRefused: 1, refusedMailboxPending: 0 },
    gauges: { paused: 2, refused: 1, refusedPending: 0 },
    rule: { outbox_refused_mailbox_pending: 0 },
  })
})

test("a throttle is said as one though a refusal's code lingers among the pending rows", async () => {
  await gate().pause('busy@example.com', 60_000)
  // A row that met Graph refusing a MAIL_FROM since fixed, waiting for its retry.
  await pending(1, 'ErrorInvalidUser')
  expect(await readers()).toEqual({
    line: 'default: 1 mailbox(es) paused by a provider throttle, the longest for … more',
    json: { count: 1, longestSeconds: expect.any(Number), refused: 0, refusedPending: 0 },
    stats: { pausedMailboxes: 1, pausedMailboxesRefused: 0, refusedMailboxPending: 0 },
    gauges: { paused: 1, refused: 0, refusedPending: 0 },
    rule: { outbox_refused_mailbox_pending: 0 },
  })
})

test('a refusal alone is said as one; a throttle that outlasts it, or one noted after it ended, takes the pause', async () => {
  const g = gate()
  await g.pause('refused@example.com', 300_000, REFUSED)
  expect((await readers()).line).toBe(
    `default: 1 mailbox(es) paused by Graph refusing it (${CHECK}), 0 pending row(s) sending from a refused one, the longest for … more`,
  )
  // A shorter throttle within the refusal's pause leaves it the refusal's.
  await g.pause('refused@example.com', 60_000)
  expect((await readers()).json).toMatchObject({ count: 1, refused: 1 })
  // One ending later holds the mailbox past it: the pause is the throttle's.
  await g.pause('refused@example.com', 900_000)
  expect((await readers()).json).toMatchObject({ count: 1, refused: 0 })
  // The pause over (lifted by hand, README), a refusal noted now is the pause's cause again.
  await t.pool.query(
    `update mailer.mailbox_pacing set next_at = now(), throttled_until = now() where mailbox = $1`,
    [mailboxKey('refused@example.com')],
  )
  await g.pause('refused@example.com', 60_000, REFUSED)
  expect((await readers()).json).toMatchObject({ count: 1, refused: 1 })
})

test("an older binary's pause (no cause written: NULL) reads as a throttle, as before", async () => {
  await pauseMailbox(t.db, { mailbox: mailboxKey('old@example.com'), ms: 60_000 })
  await t.pool.query(`update mailer.mailbox_pacing set pause_reason = null`)
  expect((await readers()).json).toEqual({
    count: 1,
    longestSeconds: expect.any(Number),
    refused: 0,
    refusedPending: 0,
  })
})

test("a refusal's pause lifted as the README says (next_at set to now()) leaves the next throttle its own cause", async () => {
  const g = gate()
  await g.pause('refused@example.com', 300_000, REFUSED)
  // The README's lift moves next_at alone: throttled_until, past it, no longer holds (pauseEnd).
  await t.pool.query(`update mailer.mailbox_pacing set next_at = now() where mailbox = $1`, [
    mailboxKey('refused@example.com'),
  ])
  expect((await readers()).json).toMatchObject({ count: 0, refused: 0 })
  await g.pause('refused@example.com', 60_000)
  expect(await readers()).toMatchObject({
    line: 'default: 1 mailbox(es) paused by a provider throttle, the longest for … more',
    json: { count: 1, refused: 0 },
  })
})

/** An older binary's pause (before 0172: a9a87806's pauseMailbox, verbatim), which names no cause. */
const olderBinaryPause = (mailbox: string, ms: number) =>
  t.pool.query(
    `insert into mailer.mailbox_pacing as m (mailbox, next_at, turn_interval, throttled_until)
     values ($1, now() + make_interval(secs => $2::float8 / 1000), interval '0',
             now() + make_interval(secs => $2::float8 / 1000))
     on conflict (mailbox) do update
        set next_at = greatest(m.next_at, now() + make_interval(secs => $2::float8 / 1000)),
            throttled_until = greatest(m.throttled_until, now() + make_interval(secs => $2::float8 / 1000)),
            turn_interval = case when m.next_at < now() + make_interval(secs => $2::float8 / 1000)
                                 then interval '0' else m.turn_interval end`,
    [mailboxKey(mailbox), ms],
  )

test("during a rolling deploy, an older binary's throttle that outlasts a refusal's pause takes it; one within it leaves it", async () => {
  const g = gate()
  await g.pause('refused@example.com', 300_000, REFUSED)
  await olderBinaryPause('refused@example.com', 60_000)
  expect((await readers()).json).toMatchObject({ count: 1, refused: 1 })
  await olderBinaryPause('refused@example.com', 900_000)
  expect(await readers()).toMatchObject({
    line: 'default: 1 mailbox(es) paused by a provider throttle, the longest for … more',
    json: { count: 1, refused: 0 },
    stats: { pausedMailboxes: 1, pausedMailboxesRefused: 0 },
    gauges: { paused: 1, refused: 0 },
  })
  // The reverse: a refusal a new binary notes past the older binary's throttle is the pause's cause,
  // and the throttle that then outlasts it again takes it back.
  await g.pause('refused@example.com', 1_200_000, REFUSED)
  expect((await readers()).json).toMatchObject({ count: 1, refused: 1 })
  await olderBinaryPause('refused@example.com', 1_500_000)
  expect((await readers()).json).toMatchObject({ count: 1, refused: 0 })
})

test('a refusal noted again past its own pause stays one; a refusal lifted by hand, then throttled by an older binary, is a throttle', async () => {
  const g = gate()
  await g.pause('refused@example.com', 60_000, REFUSED)
  await g.pause('refused@example.com', 300_000, REFUSED)
  expect((await readers()).json).toMatchObject({ count: 1, refused: 1 })
  await t.pool.query(`update mailer.mailbox_pacing set next_at = now() where mailbox = $1`, [
    mailboxKey('refused@example.com'),
  ])
  expect((await readers()).json).toMatchObject({ count: 0, refused: 0 })
  await olderBinaryPause('refused@example.com', 60_000)
  expect((await readers()).json).toMatchObject({ count: 1, refused: 0 })
})

/** A pause of a release with 0172 but before 0178 (33b2cf3e's pauseMailbox, verbatim): it names its cause, not pause_reason_ends. */
const pause0172Binary = (mailbox: string, ms: number, cause: 'throttle' | 'refused') =>
  t.pool.query(
    `insert into mailer.mailbox_pacing as m (mailbox, next_at, turn_interval, throttled_until, pause_reason)
     values ($1, now() + make_interval(secs => $2::float8 / 1000), interval '0',
             now() + make_interval(secs => $2::float8 / 1000), $3)
     on conflict (mailbox) do update
        set next_at = greatest(m.next_at, now() + make_interval(secs => $2::float8 / 1000)),
            throttled_until = greatest(m.throttled_until, now() + make_interval(secs => $2::float8 / 1000)),
            turn_interval = case when m.next_at < now() + make_interval(secs => $2::float8 / 1000)
                                 then interval '0' else m.turn_interval end,
            pause_reason = case when ${pauseEnd('m', RATE_IN_FORCE)} > now() + make_interval(secs => $2::float8 / 1000)
                                then m.pause_reason else excluded.pause_reason end`,
    [mailboxKey(mailbox), ms, cause],
  )

test('during a rolling deploy from a release with 0172, its refusal noted again past the pause stays a refusal; its throttle past it takes the pause', async () => {
  // A MAIL_FROM Graph refuses, probed at each pause's end by the older workers: each probe refused
  // again names the cause, though not pause_reason_ends, which that release does not know.
  await pause0172Binary('refused@example.com', 60_000, 'refused')
  await pause0172Binary('refused@example.com', 300_000, 'refused')
  expect((await readers()).json).toMatchObject({ count: 1, refused: 1 })
  // The same after this release noted the refusal.
  await gate().pause('other@example.com', 60_000, REFUSED)
  await pause0172Binary('other@example.com', 300_000, 'refused')
  expect((await readers()).json).toMatchObject({ count: 2, refused: 2 })
  // A shorter refusal within the pause, and a throttle past it, as that release notes them.
  await pause0172Binary('refused@example.com', 30_000, 'refused')
  expect((await readers()).json).toMatchObject({ count: 2, refused: 2 })
  await pause0172Binary('refused@example.com', 900_000, 'throttle')
  expect((await readers()).json).toMatchObject({ count: 2, refused: 1 })
  // Then an older binary's throttle (no cause named) past it: still a throttle.
  await olderBinaryPause('other@example.com', 1_200_000)
  expect((await readers()).json).toMatchObject({ count: 2, refused: 0 })
  // A hand update that moves the pause later and names the cause it holds keeps it too.
  await t.pool.query(
    `update mailer.mailbox_pacing set next_at = next_at + interval '1 hour',
            throttled_until = next_at + interval '1 hour', pause_reason = 'throttle'
      where mailbox = $1`,
    [mailboxKey('refused@example.com')],
  )
  await t.pool.query(
    `update mailer.mailbox_pacing set pause_reason = 'refused' where mailbox = $1`,
    [mailboxKey('refused@example.com')],
  )
  await t.pool.query(
    `update mailer.mailbox_pacing set next_at = next_at + interval '1 hour',
            throttled_until = next_at + interval '1 hour', pause_reason = 'refused'
      where mailbox = $1`,
    [mailboxKey('refused@example.com')],
  )
  expect((await readers()).json).toMatchObject({ count: 2, refused: 1 })
})

/**
 * `n` pending rows sending from `from` (null: none of their own, MAIL_FROM's), given back to the
 * pause's end as a claim that met it leaves them: not due.
 */
const pendingFrom = (n: number, from: string | null) =>
  t.pool.query(
    `insert into mailer.email_outbox (message, status, send_at)
     select jsonb_build_object('to', jsonb_build_array('a@example.com'), 'subject', 's', 'text', 't')
              || case when $1::text is null then '{}'::jsonb
                      else jsonb_build_object('from', jsonb_build_object('address', $1::text)) end,
            'pending', now() + interval '5 minutes'
       from generate_series(1, $2::int)`,
    [from, n],
  )

/** A worker's registry entry noting `mailFrom` as its MAIL_FROM's pause key (sql/0079), beating `ago` seconds ago. */
const worker = (id: string, mailFrom: string, ago: number) =>
  t.pool.query(
    `insert into mailer.workers (id, host, pid, version, probe_mailbox, lease_seconds, last_heartbeat_at)
     values ($1, 'h', 1, 'v', $2, 60, now() - make_interval(secs => $3::float8))`,
    [id, mailboxKey(mailFrom), ago],
  )

test("a refused pause counts the pending rows that send from its mailbox, not the others': exit 5 only while one does", async () => {
  await gate().pause('desk@example.com', 300_000, REFUSED)
  // (a) Rows pending only for another mailbox, and for MAIL_FROM (no live worker sends from desk):
  // none waits for the refusal.
  await pendingFrom(3, 'other@example.com')
  await pendingFrom(2, null)
  const none = await defaultStatus(t)
  expect({ health: none.health, reasons: none.reasons }).toEqual({ health: 'ok', reasons: [] })
  expect(await readers()).toEqual({
    line: `default: 1 mailbox(es) paused by Graph refusing it (${CHECK}), 0 pending row(s) sending from a refused one, the longest for … more`,
    json: { count: 1, longestSeconds: expect.any(Number), refused: 1, refusedPending: 0 },
    stats: { pausedMailboxes: 1, pausedMailboxesRefused: 1, refusedMailboxPending: 0 },
    // No row sends from it: "Mailbox refused" does not fire on the pause alone.
    gauges: { paused: 1, refused: 1, refusedPending: 0 },
    rule: { outbox_refused_mailbox_pending: 0 },
  })
  // (b) Its rows: a message's from (as a caller spells it), and a template's from_address keyed as
  // the worker renders it (0188: a no-break space after the >); a cancelled one is not waiting.
  await pendingFrom(2, 'Desk@Example.com')
  await t.pool.query(
    `insert into mailer.templates (name, subject, text_body, to_addresses, from_address)
     values ('desk-note', 'Hi', 'x', '{"rcpt@example.com"}', E'Help Desk <desk@example.com>\\u00a0')`,
  )
  await t.pool.query(
    `insert into mailer.email_outbox (template, source_row, status, send_at)
     values ('desk-note', '{}', 'pending', now() + interval '5 minutes'),
            ('desk-note', '{}', 'cancelled', now())`,
  )
  const reason = (n: number) =>
    `Graph refuses 1 sender mailbox(es), each paused meanwhile, and ${n} pending row(s) send from it: they wait until MAIL_FROM or the mailbox is fixed (the workers’ log and /readyz name Graph’s code; GET /v1/outbox?status=pending lists the rows)`
  const three = await defaultStatus(t)
  expect({ health: three.health, reasons: three.reasons }).toEqual({
    health: 'attention',
    reasons: [reason(3)],
  })
  expect(await readers()).toMatchObject({
    stats: { refusedMailboxPending: 3 },
    gauges: { refusedPending: 3 },
    rule: { outbox_refused_mailbox_pending: 3 },
  })
  // desk@example.com is MAIL_FROM of a live worker: the rows naming no sender send from it too;
  // an entry silent past two lease lengths (its worker gone) says nothing of MAIL_FROM.
  await worker('gone', 'other@example.com', 600)
  expect((await readers()).stats.refusedMailboxPending).toBe(3)
  await worker('live', 'desk@example.com', 5)
  const five = await defaultStatus(t)
  expect(five.reasons).toEqual([reason(5)])
  expect(five.pausedMailboxes?.refusedPending).toBe(5)
  expect(await readers()).toMatchObject({
    stats: { refusedMailboxPending: 5 },
    gauges: { refusedPending: 5 },
  })
  // A token confined to a tenant reads no pause: null, as pausedMailboxesRefused.
  const res = await appOnDefault(t).app.request('/v1/stats', {
    headers: bearer(await token({ tenant: 'shop' })),
  })
  expect(
    ((await res.json()) as { databases: { refusedMailboxPending: number | null }[] }).databases[0]
      ?.refusedMailboxPending,
  ).toBeNull()
})

// Owed: desk@example.com is another live worker's MAIL_FROM, which met the refusal, so its probe
// is owed too (sql/0062): the row goes back for it, before the pause is read.
for (const [rate, owed] of [
  [0, false],
  [60, false],
  [0, true],
  [60, true],
] as const)
  test(`MAILBOX_RATE_PER_MINUTE=${rate}: a row the gate gives back to a refusal's pause of the mailbox it names${owed ? ", another worker's MAIL_FROM whose probe is owed," : ''} says the refusal, not a throttle, as the rows the pause moved do`, async () => {
    // The refusal met by another worker (or before this one started): this worker's transport
    // knows nothing of it; the pause's cause (0172) is what tells.
    await gate().pause('desk@example.com', 300_000, { code: 'ErrorAccessDenied', httpStatus: 403 })
    if (owed) {
      await t.pool.query(
        `insert into mailer.workers (id, host, pid, version, probe_mailbox, lease_seconds)
         values ('other:1:abcdef', 'other', 1, 'v', $1, 300)`,
        [mailboxKey('desk@example.com')],
      )
      await oweProbe(t.db, mailboxKey('desk@example.com'))
    }
    const engine = createTestEngine(t, {
      deps: {
        gate: createPgSendGate({
          db: t.db,
          clock: systemClock,
          log: silentLogger,
          holder: 'w',
          maxConcurrency: 2,
          ratePerMinute: rate,
          slotTtlMs: 30_000,
          maxWaitMs: 20,
        }),
      },
    })
    const id = await enqueue(t, {
      from: 'desk@example.com',
      to: 'rcpt@example.com',
      subject: 'Hi',
      text: 'x',
    })
    try {
      await engine.start()
      const back = await pollUntil(async () => {
        const r = await t.pool.query(
          `select status, last_error_code as code, last_error as words,
                  send_at > now() + interval '4 minutes' as later
             from mailer.email_outbox where id = $1`,
          [id],
        )
        return r.rows[0].code !== null && r.rows[0].status === 'pending' ? r.rows[0] : undefined
      }, 20_000)
      expect(back).toEqual({
        status: 'pending',
        code: 'mailbox_paused',
        words:
          "not sent: the sender mailbox it names is refused by Graph: paused, its rows tried again at the pause's end",
        later: true,
      })
      expect(engine.sender.calls).toEqual([])
    } finally {
      await engine.stop()
    }
  })

// A paced row of a backlog goes back to a turn reserved for it (reservePacing), or, while the probe
// is owed to another row, for the probe: that read carries the cause too.
test("reservePacing's answer while a refusal's pause stands and its probe is owed says the refusal; a throttle's says none", async () => {
  const desk = mailboxKey('desk@example.com')
  const rowId = await enqueue(t, {
    from: 'desk@example.com',
    to: 'rcpt@example.com',
    subject: 'Hi',
    text: 'x',
  })
  const owedRead = async () => {
    await oweProbe(t.db, desk)
    return reservePacing(t.db, { mailbox: desk, intervalMs: 1_000, rowId })
  }
  await gate().pause('desk@example.com', 300_000, { code: 'ErrorAccessDenied', httpStatus: 403 })
  expect(await owedRead()).toMatchObject({ probeOwed: true, refused: true })
  await t.pool.query('delete from mailer.mailbox_pacing')
  await gate().pause('desk@example.com', 300_000)
  expect(await owedRead()).not.toHaveProperty('refused')
})
