// An interrupted send is looked up in the mailbox it went from, though the row's sender changed since (a redeploy's MAIL_FROM, a template's from_address): never sent a second time from the new one.
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { EngineEvent } from '../../src/outbox/events.ts'
import { pauseMailbox } from '../../src/outbox/mailbox-pause.ts'
import { probeAnswered } from '../../src/outbox/owed-probe.ts'
import { mailboxKey } from '../../src/outbox/send-gate.ts'
import { useTestDb } from '../support/db.ts'
import { endedAfterEach } from '../support/ended-after-each.ts'
import { attemptsOf, enqueue, rowOf, type TestEngine } from '../support/engine.ts'
import { settledFor } from '../support/events.ts'
import { type FakeGraph, startFakeGraph } from '../support/fake-graph.ts'
import { graphWorker } from '../support/graph-worker.ts'
import { ageInterruptedSend } from '../support/interrupted-send-aged.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const OLD_FROM = 'old-sender@example.com'
const NEW_FROM = 'new-sender@example.com'
// Long against the second between the interrupted send and the first worker's own lookup, which
// must come within it; the second worker's comes once it is out (ageInterruptedSend, not a wait).
const GRACE_SECONDS = 3
const TIMEOUT_SECONDS = 2
const { engines, closing } = endedAfterEach()

/** A worker wired as serve wires Graph, lookups on, sending as `mailFrom`; stopped after each test. */
function worker(
  fake: FakeGraph,
  workerId: string,
  mailFrom: string,
  policy: 'resend' | 'hold' = 'resend',
  ratePerMinute = 0,
): TestEngine {
  const engine = graphWorker(t, fake, {
    workerId,
    mailFrom,
    policy,
    ratePerMinute,
    timeoutSeconds: TIMEOUT_SECONDS,
    graceSeconds: GRACE_SECONDS,
  })
  engines.push(engine)
  return engine
}

const lookedUpEarly = (id: string) => (e: EngineEvent) =>
  e.type === 'settled' && e.id === id && (e.outcome === 'sent' || e.code === 'lookup_too_early')

/**
 * Graph accepts the row's send from `first`'s mailbox and answers a gateway's 504; its own lookup
 * a second later comes before Graph filed the message (lookup_too_early), and the worker stops.
 * Graph files the message then: the row waits for another worker, its send's mark kept, its
 * lookup grace stepped out in database time.
 */
async function interruptedBy(fake: FakeGraph, first: TestEngine, id: string): Promise<void> {
  await first.start()
  await first.events.waitFor(lookedUpEarly(id), 20_000)
  await stoppedAndFiled(fake, first, id)
}

/** Stops `first` after its early lookup of `id`; Graph files the message, and the grace is stepped out. */
async function stoppedAndFiled(fake: FakeGraph, first: TestEngine, id: string): Promise<void> {
  await first.stop()
  expect(fake.fileLateMessages()).toBe(1)
  const row = await rowOf(t, id)
  expect([row.status, row.last_error_code, row.send_started_at === null]).toEqual([
    'pending',
    'lookup_too_early',
    false,
  ])
  await ageInterruptedSend(t, id)
}

async function graph(): Promise<FakeGraph> {
  const fake = await startFakeGraph({ clientSecret: 'right', concurrencyLimit: 1000 })
  closing.push(() => fake.stop())
  fake.setFaults({ sendMail: ['accept_then_504'], fileLate: true })
  return fake
}

const sentFrom = (fake: FakeGraph, id: string) =>
  fake.accepted.filter((a) => a.outboxId === id).map((a) => a.mailbox)

/** Row `id` as it waits: its status, last code, whether leased, and seconds until it is due. */
async function waitingRow(
  id: string,
): Promise<{ status: string; code: string | null; leased: boolean; wait: number }> {
  const { rows } = await t.pool.query(
    `select status, last_error_code as code, lease_token is not null as leased,
            extract(epoch from send_at - now())::float8 as wait
       from mailer.email_outbox where id = $1`,
    [id],
  )
  return rows[0]
}

test('MAIL_FROM changed by a redeploy: the next worker finds the interrupted send in the old mailbox, sent once', async () => {
  const fake = await graph()
  const id = await enqueue(t)
  await interruptedBy(fake, worker(fake, 'before', OLD_FROM), id)

  const after = worker(fake, 'after', NEW_FROM)
  await after.start()
  await after.events.waitFor(settledFor(id, 'sent'), 30_000)
  expect(sentFrom(fake, id)).toEqual([OLD_FROM])
  expect((await attemptsOf(t, id, 'outcome, error_code')).at(-1)).toEqual({
    outcome: 'sent',
    error_code: null,
  })
})

test("a template's from_address edited after the interrupted send: found in the mailbox it went from, sent once", async () => {
  const fake = await graph()
  await t.pool.query(
    `insert into mailer.templates (name, subject, text_body, to_addresses, from_address)
       values ('notice', 'Notice', 'x', array['rcpt@example.com'], $1)`,
    [`Desk <${OLD_FROM}>`],
  )
  // As mailer.enqueue_from_row leaves a row: the template's name and its source row; rendered at send.
  const { rows } = await t.pool.query<{ id: string }>(
    `insert into mailer.email_outbox (template, source_row) values ('notice', '{}') returning id::text`,
  )
  const id = rows[0]!.id
  await interruptedBy(fake, worker(fake, 'before', 'default@example.com'), id)

  await t.pool.query(`update mailer.templates set from_address = $1 where name = 'notice'`, [
    `Desk <${NEW_FROM}>`,
  ])
  const after = worker(fake, 'after', 'default@example.com')
  await after.start()
  await after.events.waitFor(settledFor(id, 'sent'), 30_000)
  expect(sentFrom(fake, id)).toEqual([OLD_FROM])
})

test('hold policy: the past sender mailbox the app may no longer read (403) leaves the question open: held for review, not sent from the new one', async () => {
  const fake = await graph()
  const id = await enqueue(t)
  await interruptedBy(fake, worker(fake, 'before', OLD_FROM, 'hold'), id)

  // The app's read access (an RBAC scope) no longer takes in the old mailbox.
  fake.setFaults({
    pickLookup: () =>
      fake.requests.at(-1)?.mailbox === OLD_FROM
        ? { status: 403, code: 'ErrorAccessDenied', message: 'Access is denied.' }
        : undefined,
  })
  const after = worker(fake, 'after', NEW_FROM, 'hold')
  await after.start()
  await after.events.waitFor(settledFor(id, 'failed'), 30_000)
  expect(sentFrom(fake, id)).toEqual([OLD_FROM])
  expect((await rowOf(t, id)).last_error_code).toBe('ambiguous_send')
})

test('a past sender mailbox Graph no longer has (404) holds nothing to find: the row is not failed for it, and goes from its sender now', async () => {
  const fake = await graph()
  const id = await enqueue(t)
  await interruptedBy(fake, worker(fake, 'before', OLD_FROM, 'hold'), id)

  fake.setFaults({
    pickLookup: () =>
      fake.requests.at(-1)?.mailbox === OLD_FROM
        ? { status: 404, code: 'ErrorInvalidUser', message: 'The requested user is invalid.' }
        : undefined,
  })
  const after = worker(fake, 'after', NEW_FROM, 'hold')
  await after.start()
  await after.events.waitFor(settledFor(id, 'sent'), 30_000)
  expect(sentFrom(fake, id)).toEqual([OLD_FROM, NEW_FROM])
  const asked = fake.requests.filter((r) => r.kind === 'lookup' && r.outboxId === id)
  // The first worker's one lookup (Sent Items, then the whole mailbox), then the second's: its own
  // mailbox (both), then the old one, refused at its first request.
  expect(asked.map((r) => r.mailbox)).toEqual([OLD_FROM, OLD_FROM, NEW_FROM, NEW_FROM, OLD_FROM])
})

test('MAIL_FROM replaced by a redeploy after 5 template edits of the old worker’s time: its stop noted it last, so it is among the 5 asked and the send is found there, sent once', async () => {
  const fake = await graph()
  const id = await enqueue(t)
  const before = worker(fake, 'before', OLD_FROM)
  await before.start()
  await before.events.waitFor(lookedUpEarly(id), 20_000)
  // While the old worker runs (its MAIL_FROM noted at its start), five templates' senders are
  // replaced: each replaced address is noted after it.
  for (let i = 1; i <= 5; i++) {
    await t.pool.query(
      `insert into mailer.templates (name, subject, text_body, to_addresses, from_address)
         values ($1, 'S', 'x', array['rcpt@example.com'], $2)`,
      [`t${i}`, `desk${i}@example.com`],
    )
    await t.pool.query(`update mailer.templates set from_address = $1 where name = $2`, [
      `desk${i}-new@example.com`,
      `t${i}`,
    ])
  }
  await stoppedAndFiled(fake, before, id)

  const after = worker(fake, 'after', NEW_FROM)
  await after.start()
  await after.events.waitFor(settledFor(id, 'sent'), 30_000)
  expect(sentFrom(fake, id)).toEqual([OLD_FROM])
})

/**
 * A send interrupted in the old mailbox, that mailbox then paused until `nextAt` (SQL; or by
 * `nextAt` itself, called), and a worker of the new MAIL_FROM (pacing at `ratePerMinute`) looking it
 * up: its own mailbox is asked (twice), the paused one never; the row waits unsent. Returns the
 * row's id.
 */
async function lookedUpPastPausedSender(
  nextAt: string | (() => Promise<void>),
  ratePerMinute = 0,
): Promise<string> {
  const fake = await graph()
  const id = await enqueue(t)
  await interruptedBy(fake, worker(fake, 'before', OLD_FROM), id)
  if (typeof nextAt === 'function') await nextAt()
  else
    await t.pool.query(
      `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval)
         values ($1, ${nextAt}, interval '0')
       on conflict (mailbox) do update set next_at = excluded.next_at, turn_interval = excluded.turn_interval`,
      [OLD_FROM],
    )
  const asked = fake.requests.length
  const after = worker(fake, 'after', NEW_FROM, 'resend', ratePerMinute)
  await after.start()
  await after.events.waitFor(settledFor(id), 30_000)
  const lookups = fake.requests.slice(asked).filter((r) => r.kind === 'lookup')
  expect(lookups.map((r) => r.mailbox)).toEqual([NEW_FROM, NEW_FROM])
  expect(sentFrom(fake, id)).toEqual([OLD_FROM])
  return id
}

test('a past sender mailbox paused by a throttle is not asked while the pause lasts: the row waits, mailbox_paused, its mark kept', async () => {
  // Graph throttled the old mailbox for an hour (another deployment still sends from it).
  const id = await lookedUpPastPausedSender(`now() + interval '1 hour'`)
  const row = await rowOf(t, id)
  expect([row.status, row.last_error_code, row.send_started_at === null]).toEqual([
    'pending',
    'mailbox_paused',
    false,
  ])
})

test('a past sender mailbox paused by Graph refusing it is not asked: the row waits, mailbox_paused, saying the refusal, not a throttle', async () => {
  // Another deployment sending from the old mailbox met Graph refusing it (a 403): 5 minutes.
  const id = await lookedUpPastPausedSender(() =>
    pauseMailbox(t.db, { mailbox: mailboxKey(OLD_FROM), ms: 300_000, cause: 'refused' }),
  )
  const row = await rowOf(t, id)
  expect([row.last_error_code, row.last_error, row.send_started_at === null]).toEqual([
    'mailbox_paused',
    "the mailbox lookup of an interrupted send waits for a mailbox it may have gone from, refused by Graph: paused; will ask again at the pause's end",
    false,
  ])
})

test('paced (a turn a minute), a past sender mailbox throttled for less than one interval is not asked while the throttle lasts: a throttle is no pacing turn', async () => {
  // Graph throttled the old mailbox for 30 s: shorter than the interval the new worker paces by.
  const id = await lookedUpPastPausedSender(`now() + interval '30 seconds'`, 1)
  const row = await waitingRow(id)
  // Due again as the throttle ends, not at a pacing turn.
  expect(row).toMatchObject({ status: 'pending', code: 'mailbox_paused' })
  expect(row.wait).toBeGreaterThan(10)
  expect(row.wait).toBeLessThanOrEqual(30)
})

test("paced, a past sender mailbox throttled after its turn was taken, for less than the turn's remainder, is not asked while the throttle lasts", async () => {
  // The old mailbox's last turn (1/min) was taken 10 s ago; Graph then throttled its send for 20 s:
  // the released statement (pauseMailbox) leaves the turn, 50 s off, standing for it.
  const fake = await graph()
  const id = await enqueue(t)
  await interruptedBy(fake, worker(fake, 'before', OLD_FROM), id)
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval)
       values ($1, now() + interval '50 seconds', interval '1 minute')
     on conflict (mailbox) do update set next_at = excluded.next_at, turn_interval = excluded.turn_interval`,
    [mailboxKey(OLD_FROM)],
  )
  await pauseMailbox(t.db, { mailbox: mailboxKey(OLD_FROM), ms: 20_000 })
  const asked = fake.requests.length
  const after = worker(fake, 'after', NEW_FROM, 'resend', 1)
  await after.start()
  await after.events.waitFor(settledFor(id), 30_000)
  const lookups = fake.requests.slice(asked).filter((r) => r.kind === 'lookup')
  expect(lookups.map((r) => r.mailbox)).toEqual([NEW_FROM, NEW_FROM])
  const row = await waitingRow(id)
  // Due again as the throttle ends, not at the turn.
  expect(row.code).toBe('mailbox_paused')
  expect(row.wait).toBeLessThanOrEqual(20)
})

test("a past sender mailbox whose throttle an operator lifted early (next_at set to now(), the README's way) is asked at once: found there, sent once, not held to the throttle's first end", async () => {
  const fake = await graph()
  const id = await enqueue(t)
  await interruptedBy(fake, worker(fake, 'before', OLD_FROM), id)
  // Graph throttled the old mailbox for an hour; the operator lifts the pause.
  await pauseMailbox(t.db, { mailbox: mailboxKey(OLD_FROM), ms: 3600_000 })
  await t.pool.query('update mailer.mailbox_pacing set next_at = now() where mailbox = $1', [
    mailboxKey(OLD_FROM),
  ])
  const after = worker(fake, 'after', NEW_FROM)
  await after.start()
  await after.events.waitFor(settledFor(id), 30_000)
  expect(await waitingRow(id)).toMatchObject({ status: 'sent', code: null })
  expect(sentFrom(fake, id)).toEqual([OLD_FROM])
})

test('a past sender mailbox paused with no end (next_at infinity, by hand) is not asked: the row waits a recheck, mailbox_paused, no settlement error', async () => {
  const id = await lookedUpPastPausedSender(`'infinity'`)
  const row = await waitingRow(id)
  // ENDLESS_PAUSE_RECHECK_MS: looked at again in a minute, as a row of the mailbox itself.
  expect(row).toMatchObject({ status: 'pending', code: 'mailbox_paused', leased: false })
  expect(row.wait).toBeGreaterThan(30)
  expect(row.wait).toBeLessThanOrEqual(60)
})

test("a past sender mailbox whose probe is owed and out: the row waits for the probe's end, not a second, and its answer brings the row due", async () => {
  const fake = await graph()
  const id = await enqueue(t)
  await interruptedBy(fake, worker(fake, 'before', OLD_FROM), id)
  // The old mailbox's probe (another row, of a worker of the old MAIL_FROM still running: its lease
  // 40 s, as its send deadline) is out, its answer not yet in.
  const probe = await enqueue(t)
  await t.pool.query(
    `insert into mailer.workers (id, host, pid, version, probe_mailbox, lease_seconds)
       values ('old-release:1:abcdef', 'old-release', 1, '0.9.0', $1, 60)`,
    [mailboxKey(OLD_FROM)],
  )
  await t.pool.query(
    `with p as (update mailer.email_outbox
                   set status = 'sending', lease_token = gen_random_uuid(), lease_expires_at = now() + interval '40 seconds',
                       send_started_at = now(), send_deadline_at = now() + interval '40 seconds'
                 where id = $2 returning id)
     insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval, probe_owed, probe_id)
     select $1, now() - interval '1 minute', interval '0', true, p.id from p
     on conflict (mailbox) do update set next_at = excluded.next_at, turn_interval = excluded.turn_interval,
                                         probe_owed = true, probe_id = excluded.probe_id`,
    [mailboxKey(OLD_FROM), probe],
  )
  const after = worker(fake, 'after', NEW_FROM)
  await after.start()
  await after.events.waitFor(settledFor(id), 30_000)
  const row = await waitingRow(id)
  // Due as the probe surely ends (its deadline, 40 s), not in a second: claimed once for it.
  expect(row.code).toBe('mailbox_paused')
  expect(row.wait).toBeGreaterThan(20)
  // The probe's answer (the released statement) ends the owed state: the row comes due at once,
  // is looked up in the old mailbox and found there, long before the probe's deadline.
  await probeAnswered(t.db, { mailbox: mailboxKey(OLD_FROM), id: probe })
  await after.events.waitFor(settledFor(id, 'sent'), 20_000)
  expect(sentFrom(fake, id)).toEqual([OLD_FROM])
})
