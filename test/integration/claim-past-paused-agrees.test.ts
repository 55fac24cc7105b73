// The claims count a pause as the shared rule does (paused-now.ts) past their hold: MAIL_FROM's (claim_past_paused), the guard, the check of other senders; a throttle within a turn leaves other senders' rows flowing.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { sql } from 'kysely'
import { takePacing } from '../../src/outbox/mailbox-pacing.ts'
import { pauseMailbox } from '../../src/outbox/mailbox-pause.ts'
import { oweProbe } from '../../src/outbox/owed-probe.ts'
import { PACING_RATE_KEY } from '../../src/outbox/pacing-rate.ts'
import { PAUSED_MAILBOXES_NOW } from '../../src/outbox/paused-now.ts'
import { mailboxKey as k } from '../../src/outbox/send-gate.ts'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { startFakeGraph } from '../support/fake-graph.ts'
import { useGraphPerTest } from '../support/graph-per-test.ts'
import { pauseRowsOfEveryKind } from '../support/pause-rows-of-every-kind.ts'
import { claimGuarded } from '../support/paused-claim-rows.ts'
import { graphTransport, startTransportWorker } from '../support/transport-worker.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(120_000)

const t = useTestDb({ resetEach: true })
const g = useGraphPerTest()

/** Every kind of mailbox_pacing row the shared rule tells apart, and turns queued past a pause's end. */
async function everyKindOfRow(rateSeconds: number) {
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval)
     values ($1, now(), make_interval(secs => $2))`,
    [PACING_RATE_KEY, rateSeconds],
  )
  await pauseRowsOfEveryKind(t)
  // Paced by a minute, its next turn 5 minutes out: paused to next_at − turn_interval, plus the rate in force.
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval)
     values ($1, now() + interval '5 minutes', interval '60 seconds')`,
    [k('queued@example.com')],
  )
  // Paced by 1 s (a worker at 60/min), its next turn 20 s out: paused to next_at − turn_interval
  // (19 s: longer than the comparisons take, however loaded the machine), plus the rate in force.
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval)
     values ($1, now() + interval '20 seconds', interval '1 second')`,
    [k('queued-short@example.com')],
  )
}

/** Seconds each mailbox stays paused by the shared rule (paused-now.ts), those paused now. */
async function sharedSeconds() {
  const { rows } = await sql<{ mailbox: string; s: number }>`
    select mailbox, round(extract(epoch from ends - now()))::float8 as s
      from (${PAUSED_MAILBOXES_NOW}) x`.execute(t.db)
  return new Map(rows.map((r) => [r.mailbox, Number(r.s)]))
}

// The claim's hold: max(the worker's own interval, 5 s) (pg-send-gate.ts), 5 s or a minute.
for (const rate of [60, 0])
  test(`rate ${rate} s in force: the claim reads a pause the shared rule reads, past the hold, to the same end`, async () => {
    await everyKindOfRow(rate)
    const keys = await t.pool.query<{ m: string }>(
      `select mailbox as m from mailer.mailbox_pacing
        where mailbox not like 'queue %' and mailbox <> $1 order by 1`,
      [PACING_RATE_KEY],
    )
    const differ: string[] = []
    for (const holdS of [5, 60])
      for (const { m } of keys.rows) {
        // Both in one statement, at one now(): the seconds they count agree however late it runs.
        const { rows: c } = await sql<{ ms: number | null; s: number | null }>`
          select ((mailer.claim_past_paused(0, 'w', gen_random_uuid(), 30, false, 3, ${m}, ${holdS * 1000}))->>'pausedMs')::float8 as ms,
                 (select round(extract(epoch from x.ends - now()))::float8
                    from (${PAUSED_MAILBOXES_NOW}) x where x.mailbox = ${m}) as s`.execute(t.db)
        const claim = c[0]?.ms == null ? null : Math.round(c[0].ms / 1000)
        // A pause the shared rule reads that ends within the hold is waited out in place by the
        // gate, not counted by the claim: intended (short and turn at hold 60 s, older-turn).
        const s = c[0]?.s == null ? undefined : Number(c[0].s)
        const expected = s !== undefined && s > holdS ? s : null
        if (claim !== expected)
          differ.push(`${m} hold ${holdS} s: claim ${claim}, shared ${expected}`)
      }
    expect(differ).toEqual([])
  })

// The claims' other readers of a pause past the hold: the guard of a worker that has not met
// MAIL_FROM's pause (claim.ts, mailFromGuard: owed, it takes nothing) and, while MAIL_FROM's pause
// stands, claim_past_paused's check of the sender each keyed row names (its rows left out).
for (const rate of [60, 0])
  test(`rate ${rate} s in force: the claim’s guard and its check of other senders read a pause the shared rule reads, past the hold`, async () => {
    await everyKindOfRow(rate)
    const shared = await sharedSeconds()
    const { rows: keys } = await t.pool.query<{ m: string; owed: boolean }>(
      `select mailbox as m, probe_owed as owed from mailer.mailbox_pacing
        where mailbox not like 'queue %' and mailbox <> $1 order by 1`,
      [PACING_RATE_KEY],
    )
    const differ: string[] = []
    for (const holdS of [5, 60]) {
      const pausedPast = (m: string) => (shared.get(m) ?? 0) > holdS
      for (const { m, owed } of keys) {
        const guarded = await claimGuarded(t.db, m, holdS * 1000, 1)
        // An owed probe holds MAIL_FROM's rows too, paused or not (sql/0062).
        if ((guarded.owed === true) !== (pausedPast(m) || owed))
          differ.push(
            `${m} hold ${holdS} s: guard ${guarded.owed === true}, shared ${pausedPast(m)}`,
          )
      }
      // One due row naming each mailbox, claimed while MAIL_FROM's own pause stands (rolled back).
      const c = await t.pool.connect()
      try {
        await c.query('begin')
        await c.query(
          `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval)
           values ('mail-from@example.com', now() + interval '10 minutes', interval '0')`,
        )
        await c.query(
          `select mailer.enqueue_email(jsonb_build_object('from', m, 'to', 'rcpt@example.com', 'subject', 'Hi', 'text', 'x'))
             from unnest($1::text[]) m`,
          [keys.map((x) => x.m)],
        )
        const { rows } = await c.query<{ m: string }>(
          `select o.sender_key as m
             from json_array_elements(mailer.claim_past_paused(100, 'w', gen_random_uuid(), 30, false, 3,
                                                               'mail-from@example.com', $1)->'claim'->'leases') l
             join mailer.email_outbox o on o.id = (l->>0)::bigint`,
          [holdS * 1000],
        )
        const claimed = new Set(rows.map((r) => r.m))
        for (const { m } of keys)
          if (claimed.has(m) === pausedPast(m))
            differ.push(
              `${m} hold ${holdS} s: left out ${!claimed.has(m)}, shared ${pausedPast(m)}`,
            )
      } finally {
        await c.query('rollback')
        c.release()
      }
    }
    expect(differ).toEqual([])
  })

test('a throttle of MAIL_FROM within a turn of a newer worker’s rate (1/min) holds MAIL_FROM’s rows only: a worker pacing by 0 claims and sends another sender’s row during it', async () => {
  const [MAIL_FROM, OWN] = ['sender@example.com', 'own@example.com']
  g.fake = await startFakeGraph({ clientSecret: 'right', mailboxes: [OWN, MAIL_FROM] })
  const tr = graphTransport(g.fake, MAIL_FROM)
  const w = await startTransportWorker(t, g.engines, tr, {
    workerId: 'a',
    mailFrom: MAIL_FROM,
    sendTimeoutMs: 5_000,
  })
  // A newer worker noted 1/min; MAIL_FROM's turn was taken and Graph throttled it for 50 s (past
  // this worker's 5 s hold: the probe owed), as the gate leaves them (pauseMailbox, oweProbe).
  await t.pool.query(
    `update mailer.mailbox_pacing set turn_interval = interval '60 seconds' where mailbox = $1`,
    [PACING_RATE_KEY],
  )
  await takePacing(t.db, { mailbox: k(MAIL_FROM), intervalMs: 60_000 })
  await pauseMailbox(t.db, { mailbox: k(MAIL_FROM), ms: 50_000 })
  await oweProbe(t.db, k(MAIL_FROM))
  const { rows } = await t.pool.query<{ id: string; own: boolean }>(
    `select mailer.enqueue_email(jsonb_build_object('to', 'rcpt@example.com', 'subject', 'Hi', 'text', 'Hi')
              || case when own then jsonb_build_object('from', $1::text) else '{}' end)::text as id, own
       from (values (false), (true)) v(own)`,
    [OWN],
  )
  const own = rows.find((r) => r.own)!.id
  w.drainer.wake()
  // Until OWN's row is sent or the throttle is over (database time), whichever first.
  const state = await pollUntil(async () => {
    const r = await t.pool.query<{ own: string; mail_from: string; over: boolean }>(
      `select (select status from mailer.email_outbox where id = $1) as own,
              (select string_agg(status, ',') from mailer.email_outbox where id <> $1) as mail_from,
              (select throttled_until <= now() from mailer.mailbox_pacing where mailbox = $2) as over`,
      [own, k(MAIL_FROM)],
    )
    const s = r.rows[0]!
    return s.own === 'sent' || s.over ? s : undefined
  }, 90_000)
  expect(state).toEqual({
    own: 'sent',
    mail_from: expect.stringMatching(/^(pending|sending)$/),
    over: false,
  })
  expect(g.fake.requests.filter((q) => q.mailbox.toLowerCase() === MAIL_FROM)).toEqual([])
})

test('with no rate in force, MAIL_FROM’s turn queued a turn past its pause’s end holds its rows to that end, as status reads it, not to the turn', async () => {
  const MAIL_FROM = 'sender@example.com'
  g.fake = await startFakeGraph({ clientSecret: 'right', mailboxes: [MAIL_FROM] })
  const w = await startTransportWorker(t, g.engines, graphTransport(g.fake, MAIL_FROM), {
    workerId: 'a',
    mailFrom: MAIL_FROM,
    sendTimeoutMs: 5_000,
  })
  // Paced by 20 s, its next turn 30 s out: paused for 10 s (next_at − turn_interval), then a turn
  // no rate in force keeps. 30 s is past the hold (5 s) and the turn: the claims leave it out.
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval)
     values ($1, now() + interval '30 seconds', interval '20 seconds')`,
    [k(MAIL_FROM)],
  )
  const { rows } = await t.pool.query<{ id: string }>(
    `select mailer.enqueue_email('{"to":"rcpt@example.com","subject":"Hi","text":"Hi"}'::jsonb)::text as id`,
  )
  w.drainer.wake()
  // Until the row is sent or the old claim's end less the hold (next_at − 5 s) has come.
  const state = await pollUntil(async () => {
    const r = await t.pool.query<{ status: string; in_pause: boolean; late: boolean }>(
      `select o.status, o.sent_at < p.next_at - p.turn_interval as in_pause, now() >= p.next_at - interval '5 seconds' as late
         from mailer.email_outbox o, mailer.mailbox_pacing p where o.id = $1 and p.mailbox = $2`,
      [rows[0]!.id, k(MAIL_FROM)],
    )
    const s = r.rows[0]!
    return s.status === 'sent' || s.late ? s : undefined
  }, 90_000)
  expect(state).toEqual({ status: 'sent', in_pause: false, late: false })
})
