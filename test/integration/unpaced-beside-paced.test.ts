// A worker with MAILBOX_RATE_PER_MINUTE=0 beside paced workers on one mailbox: the newest worker's rate holds for it, and a newest 0 for them; a paced worker's throttle holds for it.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { systemClock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { takePacing } from '../../src/outbox/mailbox-pacing.ts'
import { pauseMailbox } from '../../src/outbox/mailbox-pause.ts'
import { notePacingRate, PACING_RATE_KEY } from '../../src/outbox/pacing-rate.ts'
import { createPgSendGate } from '../../src/outbox/pg-send-gate.ts'
import { mailboxKey } from '../../src/outbox/send-gate.ts'
import type { Sender } from '../../src/outbox/sender.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'
import { createFakeSender } from '../support/fake-sender.ts'
import { throughQueries } from '../support/through-queries.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
// The test engine's MAIL_FROM, as the gate keys it.
const MAIL_FROM = mailboxKey('sender@example.com')

/** A worker as serve wires Graph's gate, at `rate` sends per mailbox per minute; its sends' database times. */
function worker(holder: string, rate: number, db = t.db) {
  const sentAt: number[] = []
  const fake = createFakeSender()
  const sender: Sender = {
    name: 'timed',
    send: async (mail, signal) => {
      const r = await t.pool.query<{ at: number }>(
        `select extract(epoch from clock_timestamp()) * 1000 as at`,
      )
      sentAt.push(Number(r.rows[0]!.at))
      return fake.send(mail, signal)
    },
  }
  const gate = createPgSendGate({
    db,
    clock: systemClock,
    log: silentLogger,
    holder,
    maxConcurrency: 4,
    ratePerMinute: rate,
    slotTtlMs: 30_000,
    maxWaitMs: 20,
  })
  const engine = createTestEngine(t, {
    workerId: holder,
    config: { concurrency: 4 },
    deps: { db, gate, sender },
  })
  return { engine, sentAt }
}

/** Until the worker's start has noted its interval (ms) as the rate every worker paces by. */
const noted = (ms: number) =>
  pollUntil(async () => {
    const r = await t.pool.query<{ ms: number }>(
      `select extract(epoch from turn_interval) * 1000 as ms from mailer.mailbox_pacing where mailbox = $1`,
      [PACING_RATE_KEY],
    )
    return r.rows[0] && Number(r.rows[0].ms) === ms ? true : undefined
  })

/** `n` rows from MAIL_FROM, enqueued in one statement (so that one claim finds them all). */
const enqueueMany = async (n: number) =>
  (
    await t.pool.query<{ id: string }>(
      `select mailer.enqueue_email($1::jsonb) as id from generate_series(1, $2::int) order by 1`,
      [JSON.stringify({ to: 'rcpt@example.com', subject: 'Hello', text: 'Hi there' }), n],
    )
  ).rows.map((r) => r.id)

/** Each attempt's outcome and code, in order. */
const historyOf = async (id: string) =>
  (
    await t.pool.query<{ outcome: string; code: string | null }>(
      `select outcome, error_code as code from mailer.email_attempts where outbox_id = $1 order by attempt, id`,
      [id],
    )
  ).rows

test("an unpaced worker reads MAIL_FROM's turn under a newer worker's rate as a turn, not a pause: its row goes at the next turn, never marked mailbox_paused", async () => {
  const { engine } = worker('unpaced', 0)
  try {
    await engine.start()
    await noted(0)
    // A paced worker started since (10 a minute: 6 s, longer than the 5 s a pause is held) and
    // has just sent from MAIL_FROM.
    await notePacingRate(t.db, { intervalMs: 6_000 })
    expect<number>((await takePacing(t.db, { mailbox: MAIL_FROM, intervalMs: 6_000 })).waitMs).toBe(
      0,
    )
    const turn = await t.pool.query<{ next: Date }>(
      'select next_at as next from mailer.mailbox_pacing where mailbox = $1',
      [MAIL_FROM],
    )
    const id = await enqueue(t)
    await engine.events.waitFor(settledFor(id, 'sent'), 25_000)
    expect(await historyOf(id)).toEqual([{ outcome: 'sent', code: null }])
    // It took a turn of its own, no sooner than the one the paced worker left next.
    const after = await t.pool.query<{ taken: Date }>(
      'select next_at - turn_interval as taken from mailer.mailbox_pacing where mailbox = $1',
      [MAIL_FROM],
    )
    expect(after.rows[0]!.taken.getTime()).toBeGreaterThanOrEqual(turn.rows[0]!.next.getTime())
  } finally {
    await engine.stop()
  }
})

test('an unpaced worker sends at the rate a newer worker started with, not past it: a turn for each send, one interval apart', async () => {
  // Each turn MAIL_FROM's pacing row records as taken (next_at less the interval it was taken under).
  await t.pool.query(`
    create table public.turns_taken (at timestamptz not null);
    create function public.note_turn() returns trigger language plpgsql as $$
    begin insert into public.turns_taken values (new.next_at - new.turn_interval); return new; end $$;
    create trigger note_turn after insert or update on mailer.mailbox_pacing for each row
      when (new.mailbox = '${MAIL_FROM}' and new.turn_interval > interval '0')
      execute function public.note_turn();`)
  const { engine, sentAt } = worker('unpaced', 0)
  try {
    await engine.start()
    await noted(0)
    // A worker started since at 60 a minute: one send a second from a mailbox, across workers.
    await notePacingRate(t.db, { intervalMs: 1_000 })
    const ids = await enqueueMany(3)
    for (const id of ids) await engine.events.waitFor(settledFor(id, 'sent'), 20_000)
    const turns = await t.pool.query<{ gap: number | null }>(
      `select round(extract(epoch from at - lag(at) over (order by at)) * 1000)::int as gap
         from public.turns_taken order by at`,
    )
    expect([sentAt.length, turns.rows.length]).toEqual([3, 3])
    // A Date drops the sub-millisecond of the turn before.
    expect(turns.rows.map((r) => r.gap).filter((g) => g !== null && g < 999)).toEqual([])
  } finally {
    await engine.stop()
    await t.pool.query('drop table public.turns_taken; drop function public.note_turn cascade')
  }
})

test('a paced worker beside a newer unpaced one sends its backlog without pacing: no row given back to a pacing turn', async () => {
  const { engine } = worker('paced', 600)
  try {
    await engine.start()
    await noted(100)
    // A worker started since with MAILBOX_RATE_PER_MINUTE=0: no pacing, for every worker.
    await notePacingRate(t.db, { intervalMs: 0 })
    const ids = await enqueueMany(8)
    for (const id of ids) await engine.events.waitFor(settledFor(id, 'sent'), 20_000)
    const back = await t.pool.query<{ code: string; n: number }>(
      `select error_code as code, count(*)::int as n from mailer.email_attempts
        where outbox_id = any($1::bigint[]) and outcome = 'throttled' group by error_code`,
      [ids],
    )
    expect(back.rows).toEqual([])
  } finally {
    await engine.stop()
  }
})

test('an unpaced worker waits out a throttle a paced worker noted within its turn, with no pacing in force: sent after it, its last check asked again once', async () => {
  // Every last check that reads the pause, by the ids it names.
  const checks: string[] = []
  const db = throughQueries(t, (run, text, values) => {
    if (text.includes('outbox_start_sends_unpaused')) checks.push(String(values[0]))
    return run()
  })
  const { engine, sentAt } = worker('unpaced', 0, db)
  try {
    // A paced worker (10 a minute: 6 s) took MAIL_FROM's turn before a rolling deploy turned
    // pacing off (the newest worker's rate, 0, holds for every worker)...
    await notePacingRate(t.db, { intervalMs: 6_000 })
    expect<number>((await takePacing(t.db, { mailbox: MAIL_FROM, intervalMs: 6_000 })).waitMs).toBe(
      0,
    )
    await engine.start()
    await noted(0)
    // ...and its send met a throttle shorter than that turn: noted within it (sql/0112).
    await pauseMailbox(t.db, { mailbox: MAIL_FROM, ms: 3_000 })
    const throttle = await t.pool.query<{ in_turn: boolean; until: number }>(
      `select turn_interval > interval '0' and throttled_until > now() as in_turn,
              extract(epoch from throttled_until) * 1000 as until
         from mailer.mailbox_pacing where mailbox = $1`,
      [MAIL_FROM],
    )
    expect(throttle.rows[0]!.in_turn).toBe(true)
    const id = await enqueue(t)
    await engine.events.waitFor(settledFor(id, 'sent'), 20_000)
    expect(sentAt.length).toBe(1)
    expect(sentAt[0]!).toBeGreaterThanOrEqual(Number(throttle.rows[0]!.until))
    // Held by its last check once, then waited out by the gate: not asked again and again.
    expect(checks.filter((c) => c.split(',').includes(id)).length).toBeLessThanOrEqual(2)
  } finally {
    await engine.stop()
  }
})
