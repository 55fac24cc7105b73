// MAIL_FROM's claim (claim_past_paused) counts a pause as the shared rule does (paused-now.ts) past its hold, and a throttle within a turn leaves other senders' rows flowing.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { sql } from 'kysely'
import { pauseMailbox, takePacing } from '../../src/outbox/mailbox-pacing.ts'
import { oweProbe } from '../../src/outbox/owed-probe.ts'
import { PACING_RATE_KEY } from '../../src/outbox/pacing-rate.ts'
import { PAUSED_MAILBOXES_NOW } from '../../src/outbox/paused-now.ts'
import { mailboxKey as k } from '../../src/outbox/send-gate.ts'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { startFakeGraph } from '../support/fake-graph.ts'
import { useGraphPerTest } from '../support/graph-per-test.ts'
import { pauseRowsOfEveryKind } from '../support/pause-rows-of-every-kind.ts'
import { graphTransport, startTransportWorker } from '../support/transport-worker.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(120_000)

const t = useTestDb({ resetEach: true })
const g = useGraphPerTest()

/** Every kind of mailbox_pacing row the shared rule tells apart, and a turn queued past a pause's end. */
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
}

// The claim's hold: max(the worker's own interval, 5 s) (pg-send-gate.ts), 5 s or a minute.
for (const rate of [60, 0])
  test(`rate ${rate} s in force: the claim reads a pause the shared rule reads, past the hold, to the same end`, async () => {
    await everyKindOfRow(rate)
    const { rows } = await sql<{ mailbox: string; s: number }>`
      select mailbox, round(extract(epoch from ends - now()))::float8 as s
        from (${PAUSED_MAILBOXES_NOW}) x`.execute(t.db)
    const shared = new Map(rows.map((r) => [r.mailbox, Number(r.s)]))
    const keys = await t.pool.query<{ m: string }>(
      `select mailbox as m from mailer.mailbox_pacing
        where mailbox not like 'queue %' and mailbox <> $1 order by 1`,
      [PACING_RATE_KEY],
    )
    const differ: string[] = []
    for (const holdS of [5, 60])
      for (const { m } of keys.rows) {
        const { rows: c } = await t.pool.query<{ ms: number | null }>(
          `select ((mailer.claim_past_paused(0, 'w', gen_random_uuid(), 30, false, 3, $1, $2))->>'pausedMs')::float8 as ms`,
          [m, holdS * 1000],
        )
        const claim = c[0]?.ms == null ? null : Math.round(c[0].ms / 1000)
        // A pause the shared rule reads that ends within the hold is waited out in place by the
        // gate, not counted by the claim: intended (short and turn at hold 60 s, older-turn).
        const s = shared.get(m)
        const expected = s !== undefined && s > holdS ? s : null
        if (claim !== expected)
          differ.push(`${m} hold ${holdS} s: claim ${claim}, shared ${expected}`)
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
