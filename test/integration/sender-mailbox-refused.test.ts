// A MAIL_FROM Graph refuses (unknown, not enabled): its rows wait uncounted and said loudly, a row's own bad from fails alone, sending resumes; a paused mailbox's backlog is not claimed pause after pause.
import { afterEach, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { createMetrics } from '../../src/api/metrics.ts'
import { loadConfig } from '../../src/config.ts'
import { createLogger } from '../../src/log.ts'
import {
  everyFormerMailFromRowDue,
  formerMailFromRowsDue,
} from '../../src/outbox/former-mail-from-rows.ts'
import { mailboxPauses } from '../../src/outbox/mailbox-pauses.ts'
import { exitCodeOf } from '../../src/status/status-report.ts'
import { createTransport, type Transport } from '../../src/transport-wiring.ts'
import { fakeHealth } from '../api/support/fake-health.ts'
import { useTestDb } from '../support/db.ts'
import { defaultStatus } from '../support/default-status.ts'
import { createTestEngine, enqueue, type TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import {
  type FakeGraph,
  type FakeGraphFaults,
  type FakeGraphOptions,
  graphEnvFor,
  startFakeGraph,
} from '../support/fake-graph.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const MAIL_FROM = 'sender@example.com'
const OWN = 'own@example.com'
const ROWS = 20

interface Run {
  fake: FakeGraph
  transport: Transport
  engine: TestEngine
  lines: string[]
}
let run: Run | null = null
afterEach(async () => {
  await run?.engine.stop()
  await run?.fake.stop()
  run = null
})

/** A worker wired as serve wires Graph (createTransport): the shared gate, no pacing, MAIL_FROM as given. */
async function startWorker(
  fakeOptions: FakeGraphOptions,
  faults?: FakeGraphFaults,
  mailFrom = MAIL_FROM,
  fakeGraph?: FakeGraph,
): Promise<Run> {
  const fake =
    fakeGraph ??
    (await startFakeGraph({
      clientSecret: 'right',
      concurrencyLimit: 1000,
      ...fakeOptions,
    }))
  if (faults) fake.setFaults(faults)
  const lines: string[] = []
  const log = createLogger('debug', (l) => lines.push(l))
  const config = loadConfig(
    {
      ...graphEnvFor(fake),
      MAIL_FROM: mailFrom,
      GRAPH_CLIENT_SECRET: 'right',
      MAILBOX_RATE_PER_MINUTE: '0',
    },
    { requireDatabase: false },
  )
  const transport = createTransport(config, log)
  const engine = createTestEngine(t, {
    deps: {
      log,
      sender: transport.senderFor('test'),
      gate: transport.gateFor(t, 'test-worker'),
      lookup: transport.lookupFor('test'),
      sendBlockedForMs: transport.blockedForMs,
      sendTimeoutMs: 5_000,
      mailFrom,
    },
  })
  await engine.start()
  run = { fake, transport, engine, lines }
  return run
}

/** Every listed row out of `sending` and tried (a code or sent): the worker is done with them for now. */
async function allTried(ids: string[]) {
  await pollUntil(async () => {
    const r = await t.pool.query(
      `select count(*)::int as n from mailer.email_outbox
        where id = any($1::bigint[]) and status <> 'sending'
          and (status = 'sent' or last_error_code is not null)`,
      [ids],
    )
    return r.rows[0].n === ids.length ? true : undefined
  }, 30_000)
}

/**
 * A mailbox the rows name themselves stands paused for minutes and the worker holds no row: each
 * listed row waits for the pause's end, whether a claim met it (given back with Graph's code) or not
 * (moved there by the pause, `mailbox_paused`: deferPausedRows); which one a row enqueued just before the
 * refusal takes depends on the machine's load. Due past the next minute, not at the pause's end to
 * the millisecond: a later 403 of a send in flight may push the end on past a row given back.
 */
async function waitingOutPause(r: Run, ids: string[]) {
  await pollUntil(async () => {
    const p = await t.pool.query(
      `select count(*)::int as n from mailer.email_outbox
        where id = any($1::bigint[]) and status = 'pending' and send_at > now() + interval '1 minute'`,
      [ids],
    )
    return p.rows[0].n === ids.length && r.engine.drainer.status().inFlight === 0 ? true : undefined
  }, 30_000)
}

/**
 * MAIL_FROM stands paused and the worker holds no row: its waiting rows are left to the pause (the
 * claims pass them over while it stands), whether a claim met them before it began or not, and
 * each due one says why it waits (a code).
 */
async function pausedAndIdle(r: Run, mailFrom = MAIL_FROM) {
  await pollUntil(async () => {
    const p = await t.pool.query(
      `select (select count(*)::int from mailer.mailbox_pacing where mailbox = $1 and next_at > now() + interval '1 minute') as paused,
              (select count(*)::int from mailer.email_outbox where status = 'sending') as sending,
              (select count(*)::int from mailer.email_outbox
                where status = 'pending' and send_at <= now() and sender_key is null
                  and last_error_code is null) as unnamed`,
      [mailFrom],
    )
    const { paused, sending, unnamed } = p.rows[0]
    return paused === 1 &&
      sending === 0 &&
      unnamed === 0 &&
      r.engine.drainer.status().inFlight === 0
      ? true
      : undefined
  }, 30_000)
}

/**
 * Five rows naming no sender meet MAIL_FROM's refusal on `r`'s worker, which is then stopped; they
 * are made due and unnamed, for a worker started next to find. Returns their ids.
 */
async function refusedRowsDueOnceStopped(r: Run): Promise<string[]> {
  const ids: string[] = []
  for (let i = 0; i < 5; i++) ids.push(await enqueue(t))
  await pausedAndIdle(r)
  await r.engine.stop()
  await t.pool.query(
    `update mailer.email_outbox set send_at = now(), last_error_code = null, last_error = null where status = 'pending'`,
  )
  return ids
}

async function rowsOf(ids: string[]) {
  const r = await t.pool.query(
    `select status, attempts, last_error_code from mailer.email_outbox
      where id = any($1::bigint[]) order by id`,
    [ids],
  )
  return r.rows
}

/**
 * The pause and the rows' waits over (database time), the worker woken: every row of `defaults`
 * is sent, and MAIL_FROM sent each once.
 */
async function everyRowGoesOnce(r: Run, defaults: string[]) {
  await t.pool.query(`update mailer.mailbox_pacing set next_at = now()`)
  await t.pool.query(`update mailer.email_outbox set send_at = now() where status = 'pending'`)
  r.engine.drainer.wake()
  await pollUntil(async () => {
    const rows = await rowsOf(defaults)
    return rows.every((x) => x.status === 'sent') ? true : undefined
  }, 30_000)
  const sent = r.fake.accepted.filter((a) => a.mailbox === MAIL_FROM).map((a) => a.outboxId)
  expect(sent.sort()).toEqual([...defaults].sort())
}

/** Each row's version (xmin), in id order: a claim changes it. */
async function versionsOf(ids: string[]) {
  const r = await t.pool.query<{ x: string }>(
    'select xmin::text as x from mailer.email_outbox where id = any($1::bigint[]) order by id',
    [ids],
  )
  return r.rows.map((x) => x.x)
}

/** The worker's events as /metrics counts them: the two counters of waits Graph asked for. */
async function graphWaitCounters(r: Run) {
  const metrics = createMetrics({ databases: [], health: fakeHealth([]) })
  for (const e of r.engine.events.events) metrics.observe(e)
  const text = await metrics.render()
  // Summed over every cause and service (the throttle counter's labels).
  const count = (name: string) =>
    [
      ...text.matchAll(
        new RegExp(`^${name}\\{db="test"(?:,cause="\\w+",service="\\w+")?\\} (\\S+)$`, 'gm'),
      ),
    ].reduce((n, m) => n + Number(m[1]), 0)
  return {
    throttled: count('outbox_graph_throttled_total'),
    refused: count('outbox_graph_mailbox_refused_total'),
  }
}

/** The sendMail requests to MAIL_FROM the fake saw after the first `from`. */
const mailFromSends = (r: Run, from: number) =>
  r.fake.requests
    .slice(from)
    .filter((q) => q.kind === 'sendMail' && q.mailbox.toLowerCase() === MAIL_FROM)

const parsed = (lines: string[]) => lines.map((l) => JSON.parse(l) as Record<string, unknown>)

describe('a sender mailbox (MAIL_FROM) Graph refuses', () => {
  test('unknown (404 ErrorInvalidUser): its rows wait uncounted, said once at error without the address; a row naming its own unknown mailbox fails alone; once the mailbox exists every row goes out once', async () => {
    // Graph knows only OWN: MAIL_FROM has a typo, as it were.
    const known = [OWN]
    const r = await startWorker({ mailboxes: known })
    const defaults: string[] = []
    for (let i = 0; i < ROWS; i++) defaults.push(await enqueue(t))
    const ghost = await enqueue(t, {
      from: 'ghost@example.com',
      to: 'rcpt@example.com',
      subject: 'Hello',
      text: 'Hi',
    })
    const own = await enqueue(t, {
      from: OWN,
      to: 'rcpt@example.com',
      subject: 'Hello',
      text: 'Hi',
    })
    await allTried([ghost, own])
    await pausedAndIdle(r)

    // The row's own mailbox is the row's error: failed at once, as before.
    expect(await rowsOf([ghost])).toEqual([
      { status: 'failed', attempts: 1, last_error_code: 'ErrorInvalidUser' },
    ])
    expect(await rowsOf([own])).toEqual([{ status: 'sent', attempts: 1, last_error_code: null }])
    // MAIL_FROM's rows wait: not failed, no attempt burnt; those a claim met before the pause
    // was known went back for it, the rest were left unclaimed.
    const waiting = await rowsOf(defaults)
    expect(
      waiting.every(
        (w) =>
          w.status === 'pending' &&
          w.attempts === 0 &&
          [null, 'ErrorInvalidUser', 'mailbox_paused'].includes(w.last_error_code),
      ),
    ).toBe(true)
    expect(waiting.some((w) => w.last_error_code === 'ErrorInvalidUser')).toBe(true)
    // Not every row asked Graph: the first refusal paused the mailbox for the others. (The fake
    // records no request it refuses for its mailbox; the sender's lines name each one.)
    const asked = parsed(r.lines).filter(
      (l) => l.msg === 'graph sendMail not accepted' && defaults.includes(String(l.outboxId)),
    )
    expect(asked.length).toBeGreaterThan(0)
    expect(asked.length).toBeLessThan(ROWS / 2)
    console.log(
      `[mailbox] ${ROWS} rows from a refused MAIL_FROM: ${asked.length} sendMail requests to it, ` +
        `${waiting.filter((w) => w.last_error_code === 'mailbox_paused').length} given back for its pause without one`,
    )

    // Said loudly, once, by the variable that names it, never by its address.
    const errors = parsed(r.lines).filter((l) => l.level === 'error')
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({
      msg: 'sender mailbox refused by Graph: its rows wait',
      mailbox: 'MAIL_FROM',
      code: 'ErrorInvalidUser',
      httpStatus: 404,
    })
    expect(r.lines.filter((l) => l.includes(MAIL_FROM))).toEqual([])
    expect(r.transport.warning()).toContain('MAIL_FROM')
    expect(r.transport.warning()).toContain('ErrorInvalidUser')
    expect(r.transport.warning()).not.toContain(MAIL_FROM)
    expect(r.transport.senderMailboxRefused?.()).toBe(true)
    // Every line about the database's sends carries it.
    const graphLines = parsed(r.lines).filter(
      (l) =>
        String(l.msg).startsWith('graph sendMail') || String(l.msg).startsWith('mailbox paused'),
    )
    // Its pause is worded by its cause, Graph's refusal, not a throttle (none came).
    const pauses = graphLines.filter((l) => String(l.msg).startsWith('mailbox paused'))
    expect(pauses.length).toBeGreaterThan(0)
    expect(pauses.filter((l) => l.msg !== 'mailbox paused: Graph refuses it')).toEqual([])
    expect(pauses[0]).toMatchObject({ level: 'info', code: 'ErrorInvalidUser', httpStatus: 404 })
    expect(graphLines.filter((l) => l.db !== 'test')).toEqual([])
    // The pause keeps that cause (0172): status, /v1/stats and /metrics count it as a refusal.
    expect(await mailboxPauses(t.db)).toMatchObject({ mailboxes: 1, refused: 1 })
    // Its sends are counted as refused, not as throttled: "Mailbox throttled" stays quiet.
    expect(await graphWaitCounters(r)).toEqual({ throttled: 0, refused: asked.length })

    // The mailbox is fixed; the pause and the rows' waits pass (database time).
    known.push(MAIL_FROM)
    await everyRowGoesOnce(r, defaults)
    expect(r.transport.warning()).toBeNull()
    expect(r.transport.senderMailboxRefused?.()).toBe(false)
    const again = parsed(r.lines).filter((l) => l.msg === 'sender mailbox sends again')
    expect(again).toHaveLength(1)
    expect(again[0]).toMatchObject({ level: 'info', mailbox: 'MAIL_FROM' })
  })

  test('a row another worker sends back for the refused MAIL_FROM’s pause says the mailbox is refused, with Graph’s code, not a throttle', async () => {
    const r = await startWorker({ mailboxes: [OWN] })
    // A worker that has not met the pause itself (a new one: it claims as usual) finds the rows
    // due while the pause stands, and sends them back for it. Due before it starts: its first
    // claim takes them, before any give-back of its own tells it of the pause.
    const defaults = await refusedRowsDueOnceStopped(r)
    r.engine = createTestEngine(t, {
      deps: {
        log: createLogger('debug', (l) => r.lines.push(l)),
        sender: r.transport.senderFor('test'),
        gate: r.transport.gateFor(t, 'test-worker-2'),
        lookup: r.transport.lookupFor('test'),
        sendBlockedForMs: r.transport.blockedForMs,
        sendTimeoutMs: 5_000,
        mailFrom: MAIL_FROM,
      },
      workerId: 'test-worker-2',
    })
    await r.engine.start()
    const back = await pollUntil(async () => {
      const q = await t.pool.query(
        `select last_error from mailer.email_outbox
          where id = any($1::bigint[]) and last_error_code = 'mailbox_paused'`,
        [defaults],
      )
      return q.rows.length > 0 ? q.rows.map((x) => String(x.last_error)) : undefined
    }, 30_000)
    for (const message of back) {
      expect(message).toContain('refused by Graph')
      expect(message).toContain('404 ErrorInvalidUser')
      expect(message).toContain('MAIL_FROM')
      expect(message).not.toContain('throttle')
      expect(message).not.toContain(MAIL_FROM)
    }
    // The database's reset keeps mailer.mailbox_pacing: the next test's MAIL_FROM starts unpaused.
    await t.pool.query(`update mailer.mailbox_pacing set next_at = now()`)
  })

  test('a worker that never met the refusal (its own transport) tells the MAIL_FROM rows it finds waiting the refusal the pause keeps, not a throttle', async () => {
    const first = await startWorker({ mailboxes: [OWN] })
    // As rows enqueued while the pause stands reach a machine started since.
    const defaults = await refusedRowsDueOnceStopped(first)
    await startWorker({}, undefined, MAIL_FROM, first.fake)
    const words = await pollUntil(async () => {
      const q = await t.pool.query(
        `select last_error from mailer.email_outbox
          where id = any($1::bigint[]) and last_error_code = 'mailbox_paused'`,
        [defaults],
      )
      return q.rows.length === defaults.length ? q.rows.map((x) => String(x.last_error)) : undefined
    }, 30_000)
    expect([...new Set(words)]).toEqual([
      "not sent: its sender mailbox MAIL_FROM is refused by Graph: paused, one row tries it again at the pause's end",
    ])
    await t.pool.query(`update mailer.mailbox_pacing set next_at = now()`)
  })

  test('one row waiting on it: given back to the pause’s end, so no row is due and the oldest due age reads nothing; status still needs attention (exit 5) and says why', async () => {
    await t.pool.query(
      `update mailer.mailbox_pacing set next_at = now(), probe_owed = false, probe_id = null, probe_due_at = null`,
    )
    const r = await startWorker({ mailboxes: [OWN] })
    const one = await enqueue(t)
    await allTried([one])
    await pausedAndIdle(r)
    const due = await t.pool.query(
      `select send_at > now() + interval '1 minute' as later from mailer.email_outbox where id = $1`,
      [one],
    )
    expect(due.rows).toEqual([{ later: true }])
    const s = await defaultStatus(t)
    expect({
      health: s.health,
      exit: exitCodeOf([s]),
      oldest: s.oldestDuePendingSeconds,
      reasons: s.reasons,
    }).toEqual({
      health: 'attention',
      exit: 5,
      oldest: null,
      reasons: [
        'Graph refuses 1 sender mailbox(es), each paused meanwhile, and 1 pending row(s) send from it: they wait until MAIL_FROM or the mailbox is fixed (the workers’ log and /readyz name Graph’s code; GET /v1/outbox?status=pending lists the rows)',
      ],
    })
    await t.pool.query(`update mailer.mailbox_pacing set next_at = now()`)
  })

  test('not enabled for Graph (404 MailboxNotEnabledForRESTAPI): its rows wait, a row from another such mailbox fails', async () => {
    const r = await startWorker({ disabledMailboxes: [MAIL_FROM, 'old@example.com'] })
    const defaults: string[] = []
    for (let i = 0; i < 5; i++) defaults.push(await enqueue(t))
    const old = await enqueue(t, {
      from: 'old@example.com',
      to: 'rcpt@example.com',
      subject: 'Hello',
      text: 'Hi',
    })
    await allTried([old])
    await pausedAndIdle(r)
    expect(await rowsOf([old])).toEqual([
      { status: 'failed', attempts: 1, last_error_code: 'MailboxNotEnabledForRESTAPI' },
    ])
    const waiting = await rowsOf(defaults)
    expect(waiting.every((w) => w.status === 'pending' && w.attempts === 0)).toBe(true)
    expect(r.transport.warning()).toContain('MailboxNotEnabledForRESTAPI')
  })

  test('a paused MAIL_FROM’s backlog is not claimed while the pause stands: no row update, no history; rows naming another sender still go; the pause lifted, every row goes once', async () => {
    const known = [OWN]
    const r = await startWorker({ mailboxes: known })
    const defaults: string[] = []
    for (let i = 0; i < ROWS; i++) defaults.push(await enqueue(t))
    // The first rows meet the refusal and pause the mailbox.
    await pausedAndIdle(r)
    // Every waiting row due now (as at the pause's end), the pause still standing.
    await t.pool.query(`update mailer.email_outbox set send_at = now() where status = 'pending'`)
    const before = await t.pool.query(
      `select id, xmin::text as x from mailer.email_outbox where id = any($1::bigint[]) order by id`,
      [defaults],
    )
    const history0 = await t.pool.query(`select count(*)::int as n from mailer.email_attempts`)
    // A row naming a sender of its own goes meanwhile: claims run, and pass MAIL_FROM's rows over.
    const own = await enqueue(t, {
      from: OWN,
      to: 'rcpt@example.com',
      subject: 'Hello',
      text: 'Hi',
    })
    r.engine.drainer.wake()
    await pollUntil(
      async () => ((await rowsOf([own]))[0]?.status === 'sent' ? true : undefined),
      30_000,
    )
    r.engine.drainer.wake()
    await pollUntil(
      async () => (r.engine.drainer.status().inFlight === 0 ? true : undefined),
      30_000,
    )
    const after = await t.pool.query(
      `select id, xmin::text as x from mailer.email_outbox where id = any($1::bigint[]) order by id`,
      [defaults],
    )
    const history1 = await t.pool.query(`select count(*)::int as n from mailer.email_attempts`)
    expect(after.rows).toEqual(before.rows)
    // The own row's one entry only.
    expect(history1.rows[0].n - history0.rows[0].n).toBe(1)

    // The pause ends with the mailbox still refused: one row probes it and meets the refusal,
    // the rest stay unclaimed (no batch of give-backs at every pause's end).
    await t.pool.query(`update mailer.mailbox_pacing set next_at = now()`)
    r.engine.drainer.wake()
    await pollUntil(async () => {
      const rows = await rowsOf(defaults)
      return rows.some((x) => x.last_error_code === 'ErrorInvalidUser') ? true : undefined
    }, 30_000)
    await pausedAndIdle(r)
    const probed = await t.pool.query(
      `select id, xmin::text as x from mailer.email_outbox where id = any($1::bigint[]) order by id`,
      [defaults],
    )
    const moved = probed.rows.filter((p, i) => p.x !== after.rows[i].x)
    expect(moved).toHaveLength(1)

    // The mailbox fixed and its pause over (database time; the probe's row was given back to
    // the pause's end): every waiting row goes, once.
    known.push(MAIL_FROM)
    await everyRowGoesOnce(r, defaults)
  })

  test('a pause’s end probes MAIL_FROM with a row of its own, not with rows of another sender ahead in claim order: still refused, one of its rows is claimed and given back, not a batch', async () => {
    const r = await startWorker({ mailboxes: [OWN] })
    const defaults: string[] = []
    for (let i = 0; i < ROWS; i++) defaults.push(await enqueue(t))
    await pausedAndIdle(r)
    // Rows naming another sender, due only later, so the standing pause's claims leave them.
    const own: string[] = []
    const later = new Date(Date.now() + 3_600_000).toISOString()
    for (let i = 0; i < 3; i++)
      own.push(
        await enqueue(
          t,
          { from: OWN, to: 'rcpt@example.com', subject: 'Hello', text: 'Hi' },
          { sendAt: later },
        ),
      )
    // At once: the pause over, MAIL_FROM's rows due, and the other sender's rows ahead of them.
    // A minute back, not now(): a claim whose transaction began just before this one (a timer's)
    // and whose snapshot saw it has an earlier now(), by which rows due at this now() were not due
    // yet while the pause, within its hold, was over: it took the other sender's row as the probe.
    await t.pool.query(
      `
      with p as (update mailer.mailbox_pacing set next_at = now() - interval '1 minute' returning 1)
      update mailer.email_outbox
         set send_at = case when id = any($1::bigint[]) then now() - interval '1 hour'
                            else now() - interval '1 minute' end
       where status = 'pending'`,
      [own],
    )
    r.engine.drainer.wake()
    // The probe meets the refusal again and pauses MAIL_FROM anew.
    await pollUntil(
      async () => ((await rowsOf(own)).every((x) => x.status === 'sent') ? true : undefined),
      30_000,
    )
    await pausedAndIdle(r)
    // A row claimed and given back waits for the new pause's end; the rest are due still.
    const moved = (
      await t.pool.query(
        `select id from mailer.email_outbox
          where id = any($1::bigint[]) and send_at > now() + interval '1 minute'`,
        [defaults],
      )
    ).rows
    expect(moved).toHaveLength(1)
    expect((await rowsOf(own)).map((x) => x.status)).toEqual(['sent', 'sent', 'sent'])
  })

  test('a small backlog every row of which went back to the pause’s end, due just after it: still refused there, one row probes it, not a batch', async () => {
    // Queued before the worker starts: its first claim takes them all, and each goes back, due
    // at the end of the pause its refusal (or the first one) set, plus its settlement's latency.
    const defaults = (
      await t.pool.query<{ id: string }>(
        `select mailer.enqueue_email('{"to":"rcpt@example.com","subject":"Hello","text":"Hi"}'::jsonb)::text as id
           from generate_series(1, 5)`,
      )
    ).rows.map((x) => x.id)
    const r = await startWorker({ mailboxes: [OWN] })
    await pausedAndIdle(r)
    expect(
      (await rowsOf(defaults)).every(
        (x) =>
          x.status === 'pending' &&
          ['ErrorInvalidUser', 'mailbox_paused'].includes(x.last_error_code),
      ),
    ).toBe(true)
    // The pause ends 6 s from now: the wake's claim finds it standing (past the 5 s hold) and arms
    // the timer for its end less the hold. Every row is due a second after that end, as one
    // settlement a second late (a loaded machine) leaves them: none due when the timer's claim
    // finds the pause over.
    await t.pool.query(
      `with p as (update mailer.mailbox_pacing set next_at = now() + interval '6 seconds'
                   where mailbox = $1 returning next_at)
       update mailer.email_outbox set send_at = (select next_at from p) + interval '1 second'
        where id = any($2::bigint[])`,
      [MAIL_FROM, defaults],
    )
    const before = await t.pool.query(
      `select id, xmin::text as x from mailer.email_outbox where id = any($1::bigint[]) order by id`,
      [defaults],
    )
    const asked0 = r.fake.requests.length
    r.engine.drainer.wake()
    // The pause's end met with the mailbox still refused: paused anew, the worker idle.
    await pausedAndIdle(r)
    const asked = r.fake.requests
      .slice(asked0)
      .filter((q) => q.kind === 'sendMail' && q.mailbox.toLowerCase() === MAIL_FROM)
    const after = await t.pool.query(
      `select id, xmin::text as x from mailer.email_outbox where id = any($1::bigint[]) order by id`,
      [defaults],
    )
    const claimed = after.rows.filter((a, i) => a.x !== before.rows[i].x)
    // The probe, claimed and sent once; the other rows wait, unclaimed, for the new pause's end.
    expect(claimed).toHaveLength(1)
    expect(asked).toHaveLength(1)
  })

  test('a backlog given back to the pause’s end settled past the hold (a loaded machine): still refused there, one row probes it, not a batch', async () => {
    const defaults = (
      await t.pool.query<{ id: string }>(
        `select mailer.enqueue_email('{"to":"rcpt@example.com","subject":"Hello","text":"Hi"}'::jsonb)::text as id
           from generate_series(1, 5)`,
      )
    ).rows.map((x) => x.id)
    const r = await startWorker({ mailboxes: [OWN] })
    await pausedAndIdle(r)
    // The pause ends 6 s from now (the wake's claim finds it standing and arms the timer for its
    // end less the 5 s hold); every row is due 6 s past that end, past the hold by construction,
    // as settlements that late leave them: the timer's claim finds the pause over and none of
    // MAIL_FROM's rows due within the hold.
    await t.pool.query(
      `with p as (update mailer.mailbox_pacing set next_at = now() + interval '6 seconds'
                   where mailbox = $1 returning next_at)
       update mailer.email_outbox set send_at = (select next_at from p) + interval '6 seconds'
        where id = any($2::bigint[])`,
      [MAIL_FROM, defaults],
    )
    const before = await versionsOf(defaults)
    const asked0 = r.fake.requests.length
    r.engine.drainer.wake()
    // The rows come due and meet the mailbox still refused: paused anew, the worker idle.
    await pollUntil(async () => {
      const due = await t.pool.query(
        `select count(*)::int as n from mailer.email_outbox
          where id = any($1::bigint[]) and status = 'pending' and send_at <= now()`,
        [defaults],
      )
      return due.rows[0].n > 0 ? true : undefined
    }, 30_000)
    await pausedAndIdle(r)
    const claimed = (await versionsOf(defaults)).filter((v, i) => v !== before[i])
    console.log(
      `[mailbox] rows due past the hold after the pause’s end: ${claimed.length} of 5 rows claimed, ${mailFromSends(r, asked0).length} sendMail to MAIL_FROM`,
    )
    expect(claimed).toHaveLength(1)
    expect(mailFromSends(r, asked0)).toHaveLength(1)
  })

  test('MAIL_FROM’s rows scheduled past the hold when its pause ends: the probe stays owed, and the first of them to come due probes it alone, not a batch', async () => {
    const defaults = (
      await t.pool.query<{ id: string }>(
        `select mailer.enqueue_email('{"to":"rcpt@example.com","subject":"Hello","text":"Hi"}'::jsonb)::text as id
           from generate_series(1, 5)`,
      )
    ).rows.map((x) => x.id)
    const r = await startWorker({ mailboxes: [OWN] })
    await pausedAndIdle(r)
    // The pause over; MAIL_FROM's rows scheduled an hour out (their own sendAt); a row naming
    // another sender due now, so the claim that finds the pause over takes something.
    await t.pool.query(
      `with p as (update mailer.mailbox_pacing set next_at = now() - interval '1 minute'
                   where mailbox = $1 returning 1)
       update mailer.email_outbox set send_at = now() + interval '1 hour' where id = any($2::bigint[])`,
      [MAIL_FROM, defaults],
    )
    const own = await enqueue(t, {
      from: OWN,
      to: 'rcpt@example.com',
      subject: 'Hello',
      text: 'Hi',
    })
    r.engine.drainer.wake()
    await pollUntil(
      async () =>
        (await rowsOf([own]))[0]?.status === 'sent' && r.engine.drainer.status().inFlight === 0
          ? true
          : undefined,
      30_000,
    )
    // The hour passes (database time): every row due at once, the mailbox still refused. Their
    // versions as this update leaves them (a claim writes them again).
    const asked0 = r.fake.requests.length
    const due = await t.pool.query<{ id: string; x: string }>(
      `update mailer.email_outbox set send_at = now() - interval '1 minute'
        where id = any($1::bigint[]) returning id::text, xmin::text as x`,
      [defaults],
    )
    const before = defaults.map((id) => due.rows.find((x) => x.id === id)?.x)
    r.engine.drainer.wake()
    await pollUntil(async () => {
      const v = await versionsOf(defaults)
      return v.some((x, i) => x !== before[i]) ? true : undefined
    }, 30_000)
    await pausedAndIdle(r)
    const claimed = (await versionsOf(defaults)).filter((v, i) => v !== before[i])
    console.log(
      `[mailbox] rows scheduled an hour past the pause’s end: ${claimed.length} of 5 rows claimed, ${mailFromSends(r, asked0).length} sendMail to MAIL_FROM`,
    )
    expect(claimed).toHaveLength(1)
    expect(mailFromSends(r, asked0)).toHaveLength(1)
  })

  test('a mailbox a row names itself, throttled for minutes: its waiting rows move to the pause’s end at once, most never claimed nor recorded; MAIL_FROM’s rows still go', async () => {
    const N = 200
    const mine = (
      await t.pool.query<{ id: string }>(
        `select mailer.enqueue_email(jsonb_build_object('from', $1::text, 'to', 'rcpt@example.com', 'subject', 'Hi', 'text', 'x'))::text as id
           from generate_series(1, $2::int)`,
        [OWN, N],
      )
    ).rows.map((x) => x.id)
    // The first sendMail is throttled for 5 minutes: OWN is paused for every worker (requests
    // already on their way may still be accepted).
    const r = await startWorker(
      { mailboxes: [OWN, MAIL_FROM] },
      { sendMail: [{ status: 429, code: 'ApplicationThrottled', retryAfter: '300' }] },
    )
    await pollUntil(async () => {
      const p = await t.pool.query(
        `select count(*)::int as n from mailer.email_outbox
          where id = any($1::bigint[])
            and (status = 'sending' or (status = 'pending' and send_at <= now() + interval '1 minute'))`,
        [mine],
      )
      return p.rows[0].n === 0 && r.engine.drainer.status().inFlight === 0 ? true : undefined
    }, 30_000)
    const recorded = await t.pool.query(
      `select count(distinct outbox_id)::int as n from mailer.email_attempts
        where outbox_id = any($1::bigint[]) and outcome <> 'sent'`,
      [mine],
    )
    const rows = await rowsOf(mine)
    // None failed, no attempt burnt; only the rows claimed before the pause was met (at most the
    // worker's leases) went back and were recorded, the rest waited unclaimed for its end.
    expect(
      rows.every((x) => x.status === 'sent' || (x.status === 'pending' && x.attempts === 0)),
    ).toBe(true)
    expect(recorded.rows[0].n).toBeGreaterThan(0)
    expect(recorded.rows[0].n).toBeLessThan(N / 4)
    // The rows moved unclaimed say why they wait, as MAIL_FROM's rows left unclaimed do.
    const unrecorded = await t.pool.query(
      `select distinct o.last_error_code, o.last_error from mailer.email_outbox o
        where o.id = any($1::bigint[]) and o.status = 'pending'
          and not exists (select from mailer.email_attempts a where a.outbox_id = o.id)`,
      [mine],
    )
    expect(unrecorded.rows).toEqual([
      {
        last_error_code: 'mailbox_paused',
        last_error: 'not sent: its sender mailbox is paused after a provider throttle',
      },
    ])
    // Another mailbox's rows still go meanwhile.
    const other = await enqueue(t)
    await pollUntil(
      async () => ((await rowsOf([other]))[0]?.status === 'sent' ? true : undefined),
      30_000,
    )
  })

  test('a mailbox a row names itself that the app may not send from (403 ErrorAccessDenied): its rows wait, its pause a refusal, counted as refused, not throttled; MAIL_FROM is not said refused', async () => {
    // A row of OWN's not due yet when the refusal pauses it: never claimed, moved to the pause's
    // end. A row enqueued below is so too when the first send's 403 lands before the claims met it
    // (a loaded machine): this one takes that path every run.
    const inAMinute = new Date(Date.now() + 60_000).toISOString()
    const moved = await enqueue(
      t,
      { from: OWN, to: 'rcpt@example.com', subject: 'Hi', text: 'x' },
      { sendAt: inAMinute },
    )
    const r = await startWorker(
      { mailboxes: [OWN, MAIL_FROM] },
      {
        pickSendMail: (mailbox) =>
          mailbox === OWN ? { status: 403, code: 'ErrorAccessDenied' } : undefined,
      },
    )
    const mine: string[] = [moved]
    for (let i = 0; i < 3; i++)
      mine.push(await enqueue(t, { from: OWN, to: 'rcpt@example.com', subject: 'Hi', text: 'x' }))
    await waitingOutPause(r, mine)
    expect((await rowsOf(mine)).every((x) => x.status === 'pending' && x.attempts === 0)).toBe(true)
    // The scheduled row was moved, not given back: no history, but it says why it waits, as a
    // row given back for MAIL_FROM's refusal does: the refusal named, Graph's code and status.
    const movedRow = await t.pool.query(
      'select last_error_code, last_error from mailer.email_outbox where id = $1',
      [moved],
    )
    expect(movedRow.rows).toEqual([
      {
        last_error_code: 'mailbox_paused',
        last_error:
          "not sent: the sender mailbox it names is refused by Graph (HTTP 403 ErrorAccessDenied): paused, its rows tried again at the pause's end",
      },
    ])
    const movedHistory = await t.pool.query(
      'select count(*)::int as n from mailer.email_attempts where outbox_id = $1',
      [moved],
    )
    expect(movedHistory.rows[0].n).toBe(0)
    expect(await mailboxPauses(t.db)).toMatchObject({ mailboxes: 1, refused: 1 })
    const counters = await graphWaitCounters(r)
    expect(counters).toEqual({ throttled: 0, refused: expect.any(Number) })
    expect(counters.refused).toBeGreaterThan(0)
    // "Sender mailbox refused" reads MAIL_FROM alone: a mailbox a row names is not it.
    expect(r.transport.senderMailboxRefused?.()).toBe(false)
  })

  test('pause after pause, the waiting rows are the refusal’s one error line, not a line each at info', async () => {
    const r = await startWorker({ mailboxes: [OWN] })
    const defaults: string[] = []
    for (let i = 0; i < ROWS; i++) defaults.push(await enqueue(t))
    const CYCLES = 3
    for (let k = 1; k <= CYCLES; k++) {
      if (k > 1) {
        // The pause and the rows' waits pass (database time): the next rows probe the mailbox.
        await t.pool.query(`update mailer.mailbox_pacing set next_at = now()`)
        await t.pool.query(
          `update mailer.email_outbox set send_at = now(), last_error_code = null where status = 'pending'`,
        )
        r.engine.drainer.wake()
        // The pause's end met: a row probes the mailbox again (its code comes back).
        await pollUntil(async () => {
          const rows = await rowsOf(defaults)
          return rows.some((x) => x.last_error_code !== null) ? true : undefined
        }, 30_000)
      }
      await pausedAndIdle(r)
    }
    const lines = parsed(r.lines)
    const history = await t.pool.query(
      `select count(*)::int as n from mailer.email_attempts where outbox_id = any($1::bigint[])`,
      [defaults],
    )
    const info = lines.filter((l) => l.level === 'info' && l.msg === 'send will be retried')
    console.log(
      `[mailbox] ${ROWS} rows, ${CYCLES} pauses of a refused MAIL_FROM: ${info.length} 'send will be retried' lines at info, ` +
        `${history.rows[0].n} history rows`,
    )
    // A row sent back from the paused mailbox asked nobody: its line is debug. The row that asked
    // Graph and met the refusal keeps its line at info.
    expect(info.filter((l) => l.code === 'mailbox_paused')).toEqual([])
    expect(info.length).toBeGreaterThan(0)
    expect(info.length).toBeLessThan(ROWS)
    expect(lines.filter((l) => l.level === 'error')).toHaveLength(1)
    // A run of give-backs for the pause is recorded once, as a run of pacing turns or token waits
    // is: the row's columns say what held it last and when it is due.
    const repeated = await t.pool.query(
      `select count(*)::int as n from (
         select error_code, lag(error_code) over (partition by outbox_id order by id) as prev
           from mailer.email_attempts where outbox_id = any($1::bigint[])) h
        where error_code = 'mailbox_paused' and prev = 'mailbox_paused'`,
      [defaults],
    )
    expect(repeated.rows[0].n).toBe(0)
    expect(await rowsOf(defaults)).toSatisfy((rows) =>
      rows.every(
        (x: { status: string; attempts: number }) => x.status === 'pending' && x.attempts === 0,
      ),
    )
  })
})

describe('MAIL_FROM corrected after Graph refused it', () => {
  test('restarted with the new address, the rows that met the old one’s refusal go at once, not at its pause’s end; one named while it stood goes too; that pause is lifted; a row scheduled ahead keeps its time', async () => {
    const TYPO = 'sendr@example.com'
    // The database's reset keeps mailer.mailbox_pacing: no pause of an earlier test stands.
    await t.pool.query(
      `update mailer.mailbox_pacing set next_at = now(), probe_owed = false, probe_id = null, probe_due_at = null`,
    )
    // Enqueued before the worker starts, so its first claim takes all three: each meets the
    // refusal (its own 404, or the pause another's set) and goes back to the pause's end. A row
    // claimed only after the pause stood would be named `mailbox_paused` and keep its due sendAt
    // (README: MAIL_FROM's naming moves no row), which `named` below covers on purpose.
    const defaults: string[] = []
    for (let i = 0; i < 3; i++) defaults.push(await enqueue(t))
    const inAnHour = new Date(Date.now() + 3_600_000).toISOString()
    const later = await enqueue(t, undefined, { sendAt: inAnHour })
    const first = await startWorker({ mailboxes: [OWN, MAIL_FROM] }, undefined, TYPO)
    await allTried(defaults)
    await pausedAndIdle(first, TYPO)
    // Each row went back to the old address's pause's end (5 minutes), none due now.
    const waits = await t.pool.query<{ s: number }>(
      `select extract(epoch from send_at - now())::float8 as s from mailer.email_outbox
        where id = any($1::bigint[])`,
      [defaults],
    )
    expect(waits.rows.map((w) => w.s > 60)).toEqual([true, true, true])
    // A row enqueued while the pause stands is named by the next claim, not moved: due, untried.
    const named = await enqueue(t)
    await pausedAndIdle(first, TYPO)
    const namedRow = await t.pool.query(
      `select last_error_code, send_at <= now() as due, attempts from mailer.email_outbox where id = $1`,
      [named],
    )
    expect(namedRow.rows).toEqual([{ last_error_code: 'mailbox_paused', due: true, attempts: 0 }])
    await first.engine.stop()

    const fixed = await startWorker({}, undefined, MAIL_FROM, first.fake)
    // Far within the old pause (300 s): the new address has no pause, so its rows go now.
    const goes = [...defaults, named]
    const statuses = async () => (await rowsOf(goes)).map((x) => x.status)
    await pollUntil(
      async () => ((await statuses()).every((x) => x === 'sent') ? true : undefined),
      15_000,
    ).catch(() => {})
    expect(await statuses()).toEqual(['sent', 'sent', 'sent', 'sent'])
    const sent = fixed.fake.accepted.filter((a) => a.mailbox === MAIL_FROM).map((a) => a.outboxId)
    expect(sent.sort()).toEqual([...goes].sort())
    // The old address's pause holds nothing now: status says no mailbox paused.
    expect(await mailboxPauses(t.db)).toMatchObject({ mailboxes: 0, refused: 0 })
    const scheduled = await t.pool.query(
      `select status, send_at = $2::timestamptz as kept from mailer.email_outbox where id = $1`,
      [later, inAnHour],
    )
    expect(scheduled.rows).toEqual([{ status: 'pending', kept: true }])
  })

  test('which rows come due: those given back for a pause uncounted, naming no sender; not a pacing turn’s, a credential’s, a backoff’s, a sendAt’s, a named mailbox’s nor an interrupted send’s; none while the new address is paused; a statement at a time', async () => {
    await t.pool.query(
      `update mailer.mailbox_pacing set next_at = now(), probe_owed = false, probe_id = null, probe_due_at = null`,
    )
    /** A pending row due in 5 minutes whose last try met `code` (null: none), its last attempt `outcome`. */
    const row = async (
      code: string | null,
      outcome: string | null,
      o: { from?: string; started?: boolean } = {},
    ) => {
      const message = {
        to: 'rcpt@example.com',
        subject: 's',
        text: 't',
        ...(o.from && { from: o.from }),
      }
      const id = (
        await t.pool.query<{ id: string }>(
          `insert into mailer.email_outbox (message, status, send_at, last_error_code, last_error, send_started_at)
           values ($1::jsonb, 'pending', now() + interval '5 minutes', $2::text, $2::text,
                   case when $3::boolean then now() - interval '1 minute' end)
           returning id::text`,
          [JSON.stringify(message), code, o.started ?? false],
        )
      ).rows[0]!.id
      if (outcome !== null) {
        await t.pool.query(
          `insert into mailer.email_attempts (outbox_id, attempt, outcome, error_code) values ($1, 1, $2, $3)`,
          [id, outcome, code],
        )
      }
      return id
    }
    const moved = [
      await row('ErrorInvalidUser', 'throttled'),
      await row('mailbox_paused', 'throttled'),
      await row('ApplicationThrottled', 'throttled'),
    ]
    const kept = [
      await row('mailbox_paced', null),
      await row('AADSTS7000222', 'throttled'),
      await row('certificate_expired', 'throttled'),
      await row('http_500', 'retry'),
      await row(null, null),
      await row('mailbox_paused', 'throttled', { from: OWN }),
      await row('mailbox_paused', 'throttled', { started: true }),
    ]
    const due = async (ids: string[]) =>
      (
        await t.pool.query<{ due: boolean }>(
          'select send_at <= now() as due from mailer.email_outbox where id = any($1::bigint[]) order by id',
          [ids],
        )
      ).rows.map((r) => r.due)
    // The new address paused (or owing its probe): its rows wait for it as they are.
    await t.pool.query(
      `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval, probe_owed)
       values ($1, now() + interval '5 minutes', interval '0', false)
       on conflict (mailbox) do update set next_at = excluded.next_at, turn_interval = excluded.turn_interval`,
      [MAIL_FROM],
    )
    expect(await formerMailFromRowsDue(t.db, MAIL_FROM)).toEqual({ due: 0, ownHeld: true })
    await t.pool.query(
      `update mailer.mailbox_pacing set next_at = now(), probe_owed = true where mailbox = $1`,
      [MAIL_FROM],
    )
    expect(await formerMailFromRowsDue(t.db, MAIL_FROM)).toEqual({ due: 0, ownHeld: true })
    await t.pool.query(`update mailer.mailbox_pacing set probe_owed = false where mailbox = $1`, [
      MAIL_FROM,
    ])
    // Two a statement: the second takes the third, and the rest stay.
    expect(await formerMailFromRowsDue(t.db, MAIL_FROM, 2)).toEqual({ due: 2, ownHeld: false })
    expect(await everyFormerMailFromRowDue(t.db, MAIL_FROM, 2)).toEqual({ due: 1, ownHeld: false })
    expect(await due(moved)).toEqual([true, true, true])
    expect(await due(kept)).toEqual([false, false, false, false, false, false, false])
  })
})

describe('the rows a paused MAIL_FROM’s claims leave out', () => {
  const THROTTLED = { status: 429, code: 'ApplicationThrottled', retryAfter: '300' } as const
  /** Pending rows of `ids` that no claim met (no history entry): what a user listing them sees. */
  const unmet = async (ids: string[]) =>
    (
      await t.pool.query(
        `select distinct o.last_error_code, o.last_error, o.attempts, o.send_at <= now() as due
           from mailer.email_outbox o
          where o.id = any($1::bigint[]) and o.status = 'pending'
            and not exists (select from mailer.email_attempts a where a.outbox_id = o.id)`,
        [ids],
      )
    ).rows
  const defaultRows = async (n: number) =>
    (
      await t.pool.query<{ id: string }>(
        `select mailer.enqueue_email('{"to":"rcpt@example.com","subject":"Hello","text":"Hi"}'::jsonb)::text as id
           from generate_series(1, $1::int)`,
        [n],
      )
    ).rows.map((x) => x.id)
  const versions = async (ids: string[]) =>
    (
      await t.pool.query<{ v: string }>(
        'select xmin::text || ctid::text as v from mailer.email_outbox where id = any($1::bigint[]) order by id',
        [ids],
      )
    ).rows.map((x) => x.v)

  test('throttled for minutes: the rows no claim met say `mailbox_paused`, as those given back do, written once; one enqueued during the pause is named at its wake; sendAt, attempts and history untouched', async () => {
    const defaults = await defaultRows(40)
    const r = await startWorker({ mailboxes: [OWN, MAIL_FROM] }, { pickSendMail: () => THROTTLED })
    await pausedAndIdle(r)
    const named = await pollUntil(async () => {
      const u = await unmet(defaults)
      return u.length === 1 && u[0].last_error_code !== null ? u : undefined
    }, 10_000).catch(() => unmet(defaults))
    expect(named).toEqual([
      {
        last_error_code: 'mailbox_paused',
        last_error: 'not sent: its sender mailbox is paused after a provider throttle',
        attempts: 0,
        due: true,
      },
    ])
    const before = await versions(defaults)
    // Enqueued while the pause stands: its notification's claim leaves it out and names it.
    const [late] = await defaultRows(1)
    await pollUntil(
      async () => ((await unmet([late!]))[0]?.last_error_code ? true : undefined),
      10_000,
    )
    expect(await unmet([late!])).toEqual(named)
    // The rows named before are not written again.
    expect(await versions(defaults)).toEqual(before)
    expect(r.fake.accepted).toEqual([])
  })

  test('a refused MAIL_FROM: every waiting row says why (Graph’s code on the rows that met it, `mailbox_paused` naming the refusal on the rest), and a code a row’s own attempt met stays', async () => {
    const defaults = await defaultRows(ROWS)
    const r = await startWorker({ mailboxes: [OWN] })
    await pausedAndIdle(r)
    const codes = async () =>
      (
        await t.pool.query(
          `select distinct last_error_code from mailer.email_outbox
            where id = any($1::bigint[]) and status = 'pending' order by 1`,
          [defaults],
        )
      ).rows.map((x) => x.last_error_code)
    const all = await pollUntil(async () => {
      const c = await codes()
      return c.includes(null) ? undefined : c
    }, 10_000).catch(codes)
    expect(all).toEqual(['ErrorInvalidUser', 'mailbox_paused'])
    for (const row of await unmet(defaults)) {
      expect(row.last_error).toContain('refused by Graph (HTTP 404 ErrorInvalidUser)')
      expect(row.last_error).not.toContain(MAIL_FROM)
    }
  })
})
