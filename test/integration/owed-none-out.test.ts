// While a mailbox's probe is owed and none is out, a row naming it goes back until the owed state ends (a minute at most), and the probe's owner may take such a row as its probe; a row of MAIL_FROM's own, to its pause's end.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { loadConfig } from '../../src/config.ts'
import { createLogger } from '../../src/log.ts'
import { mailboxKey } from '../../src/outbox/send-gate.ts'
import { createTransport } from '../../src/transport-wiring.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { graphEnvFor, startFakeGraph } from '../support/fake-graph.ts'
import { startThrottlingGraph, useGraphPerTest } from '../support/graph-per-test.ts'
import { graphTransport, startTransportWorker } from '../support/transport-worker.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const g = useGraphPerTest()
/** The old MAIL_FROM of a rolling deploy (its probe owed), and the new one. */
const OLD = 'outbox@example.com'
const NEW = 'outbox-next@example.com'

/**
 * OLD's pause over and its probe owed, none out; the old release's machine noted live (the reclaim
 * does not clear the probe as stale) but claiming nothing; one of its own rows scheduled for
 * tomorrow (its owner's claim keeps the probe owed for it rather than clearing it).
 */
async function owedNoneOut(): Promise<void> {
  await t.pool.query(
    `with w as (insert into mailer.workers (id, host, pid, version, probe_mailbox, lease_seconds)
                values ('old-release:1:abcdef', 'old-release', 1, '0.9.0', $1, 600))
     insert into mailer.mailbox_pacing (mailbox, next_at, probe_owed) values ($1, now() - interval '1 minute', true)`,
    [mailboxKey(OLD)],
  )
  await enqueue(
    t,
    { to: 'rcpt@example.com', subject: 'Later', text: 'Hi' },
    { sendAt: new Date(Date.now() + 86_400_000).toISOString() },
  )
}

const named = () => enqueue(t, { to: 'rcpt@example.com', subject: 'Hello', text: 'Hi', from: OLD })

test('a row naming a mailbox whose probe is owed and not out yet goes back until the owed state ends (a minute at most), not for 1 s', async () => {
  await owedNoneOut()
  const id = await named()
  g.fake = await startThrottlingGraph(g, OLD, [OLD, NEW])
  const fresh = await startTransportWorker(t, g.engines, graphTransport(g.fake, NEW), {
    workerId: 'worker-new',
    mailFrom: NEW,
    sendTimeoutMs: 30_000,
  })
  fresh.drainer.wake()
  // Its give-back: due again in how many seconds.
  const inS = await pollUntil(async () => {
    const { rows } = await t.pool.query<{ in_s: number }>(
      `select extract(epoch from send_at - now())::float8 as in_s from mailer.email_outbox
        where id = $1::bigint and status = 'pending' and last_error_code = 'mailbox_paused'`,
      [id],
    )
    return rows[0]?.in_s
  })
  expect(inS).toBeGreaterThan(30)
  expect(inS).toBeLessThanOrEqual(60)
  expect(g.fake.requests.filter((r) => r.kind === 'sendMail' && r.mailbox === OLD).length).toBe(0)
})

test("the owed probe's owner takes a row held for it (given back while none was out) as its probe, as it takes a due one", async () => {
  await owedNoneOut()
  const id = await named()
  await t.pool.query(
    `update mailer.email_outbox set send_at = now() + interval '1 minute', last_error_code = 'mailbox_paused'
      where id = $1::bigint`,
    [id],
  )
  // The owner's claim (MAIL_FROM OLD, as a worker of either release runs it).
  await t.pool.query(
    `select mailer.claim_past_paused(10, 'old-release:1:abcdef', gen_random_uuid(), 30, true, 3, $1, 5000)`,
    [mailboxKey(OLD)],
  )
  const { rows } = await t.pool.query<{ probe: string | null; status: string }>(
    `select p.probe_id::text as probe, o.status from mailer.mailbox_pacing p, mailer.email_outbox o
      where p.mailbox = $1 and o.id = $2::bigint`,
    [mailboxKey(OLD), id],
  )
  expect(rows[0]).toEqual({ probe: id, status: 'sending' })
})

test("MAIL_FROM's own rows, waiting for a send slot when a throttle of under a minute paused it, go back to the pause's end: the owed state's end brings no row without a sender key due", async () => {
  g.fake = await startFakeGraph({ clientSecret: 'right', concurrencyLimit: 1000, mailboxes: [OLD] })
  // Graph's 429 for the first send, asking 20 s (past the 5 s a row waits in place: the probe owed).
  g.fake.setFaults({ sendMail: [{ status: 429, code: 'ApplicationThrottled', retryAfter: '20' }] })
  // One provider slot: the worker's other rows wait for it while the first one's send meets the throttle.
  const tr = createTransport(
    loadConfig(
      {
        ...graphEnvFor(g.fake),
        MAIL_FROM: OLD,
        GRAPH_CLIENT_SECRET: 'right',
        GRAPH_MAX_CONCURRENCY: '1',
        MAILBOX_RATE_PER_MINUTE: '0',
      },
      { requireDatabase: false },
    ),
    createLogger('error', () => {}),
  )
  for (let i = 0; i < 4; i++)
    await enqueue(t, { to: 'rcpt@example.com', subject: 'Hello', text: 'Hi' })
  await startTransportWorker(t, g.engines, tr, {
    workerId: 'worker-old',
    mailFrom: OLD,
    sendTimeoutMs: 5_000,
  })
  // Every row back: the throttled one due at the pause's end, the others given back for it.
  const rows = await pollUntil(async () => {
    const { rows } = await t.pool.query<{
      status: string
      code: string | null
      past_end_s: number
    }>(
      `select o.status, o.last_error_code as code, extract(epoch from o.send_at - p.next_at)::float8 as past_end_s
         from mailer.email_outbox o, mailer.mailbox_pacing p
        where p.mailbox = $1 and p.probe_owed order by o.id`,
      [mailboxKey(OLD)],
    )
    return rows.length === 4 && rows.every((r) => r.status === 'pending') ? rows : undefined
  }, 30_000)
  const held = rows.filter((r) => r.code === 'mailbox_paused')
  expect(held.length).toBeGreaterThan(0)
  // Due by the pause's end (a second's leeway for the give-back's own now()), not a minute after the throttle.
  expect(Math.max(...held.map((r) => r.past_end_s))).toBeLessThan(1)
})

test("a row of MAIL_FROM's own that meets its owed probe out goes back to the pause's end, not to the probe's lease end: the probe's answer brings no row without a sender key due", async () => {
  g.fake = await startFakeGraph({ clientSecret: 'right', concurrencyLimit: 1000, mailboxes: [OLD] })
  const probe = await enqueue(t, { to: 'rcpt@example.com', subject: 'Probe', text: 'Hi' })
  const row = await enqueue(t, { to: 'rcpt@example.com', subject: 'Hello', text: 'Hi' })
  // OLD's pause over, its probe out (sending, its lease 5 minutes away); the row claimed before.
  await t.pool.query(
    `with s as (update mailer.email_outbox set status = 'sending', lease_owner = 'worker-old', lease_token = gen_random_uuid(),
                       lease_expires_at = now() + interval '5 minutes'
                 where id = any($2::bigint[]) returning 1)
     insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval, probe_owed, probe_id)
     values ($1, now() - interval '1 second', interval '0', true, $3::bigint)`,
    [mailboxKey(OLD), [probe, row], probe],
  )
  const gate = graphTransport(g.fake, OLD).gateFor(t, 'worker-old')
  const back = await gate.acquire(OLD, new AbortController().signal, true, row)
  expect(back !== null && 'pausedForMs' in back ? back.pausedForMs : back).toBeLessThanOrEqual(
    1_000,
  )
})
