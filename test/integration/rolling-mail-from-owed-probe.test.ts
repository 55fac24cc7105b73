// A rolling deploy that changes MAIL_FROM: while the old MAIL_FROM's probe is owed, a worker of the new one sends no row naming the old address.
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { Transport } from '../../src/transport-wiring.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue, type TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { startThrottlingGraph, useGraphPerTest } from '../support/graph-per-test.ts'
import { pausedOwedAndIdle } from '../support/owed-pause.ts'
import { graphTransport, startTransportWorker } from '../support/transport-worker.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
/** The release being replaced sends from OLD, the next one from NEW. */
const OLD = 'outbox@example.com'
const NEW = 'outbox-next@example.com'

const g = useGraphPerTest()

async function startWorker(tr: Transport, id: string, mailFrom: string): Promise<TestEngine> {
  return startTransportWorker(t, g.engines, tr, {
    workerId: id,
    mailFrom,
    // Past the test's window: the probe's hung request is not given up and sent again meanwhile.
    sendTimeoutMs: 30_000,
  })
}

const sendsFrom = (mailbox: string, from: number) =>
  (g.fake?.requests ?? [])
    .slice(from)
    .filter((q) => q.kind === 'sendMail' && q.mailbox.toLowerCase() === mailbox)

/** Three rows naming OLD's address, due tomorrow. */
async function namedRows(): Promise<string[]> {
  const named: string[] = []
  for (let i = 0; i < 3; i++)
    named.push(
      await enqueue(
        t,
        { to: 'rcpt@example.com', subject: 'Hello', text: 'Hi', from: OLD },
        { sendAt: new Date(Date.now() + 86_400_000).toISOString() },
      ),
    )
  return named
}

/** OLD's pause ends with the `named` rows due, in one statement. */
const pauseEndsNamedDue = (named: string[]) =>
  t.pool.query(
    `with p as (update mailer.mailbox_pacing set next_at = now() - interval '1 minute' where mailbox = $1 returning 1)
     update mailer.email_outbox set send_at = now() - interval '1 minute' where id = any($2::bigint[])`,
    [OLD, named],
  )

/** Waits for OLD's probe out: named for every worker, its request at Graph since `asked0`. */
const probeOut = (asked0: number) =>
  pollUntil(async () => {
    const p = await t.pool.query(
      `select probe_id from mailer.mailbox_pacing where mailbox = $1 and probe_owed`,
      [OLD],
    )
    return p.rows[0]?.probe_id != null && sendsFrom(OLD, asked0).length > 0 ? true : undefined
  }, 30_000)

for (const rate of ['0', '600']) {
  test(`MAILBOX_RATE_PER_MINUTE=${rate}: rows naming the old MAIL_FROM's address wait for its owed probe on a worker of the new MAIL_FROM; one request reaches the mailbox`, async () => {
    g.fake = await startThrottlingGraph(g, OLD, [OLD, NEW])
    // The old release meets Graph's throttle with a row of its MAIL_FROM: the pause, its probe owed.
    await enqueue(t)
    const old = await startWorker(graphTransport(g.fake, OLD, rate), 'worker-old', OLD)
    await pausedOwedAndIdle(t, OLD, old)
    // Three rows name its address, due later. The first row, given back to the pause's end, keeps
    // the probe owed (something of the old MAIL_FROM is pending).
    const named = await namedRows()
    // The pause ends with the named rows due (the first row not yet), the probe still owed; Graph
    // now holds every request to the old mailbox unanswered: the probe stays out, and owed.
    g.fake.setFaults({ pickSendMail: (mailbox) => (mailbox === OLD ? 'hang' : undefined) })
    const asked0 = g.fake.requests.length
    const attempts0 = (
      await t.pool.query<{ id: string }>(
        `select coalesce(max(id), 0)::text as id from mailer.email_attempts`,
      )
    ).rows[0]!.id
    await pauseEndsNamedDue(named)
    // The old release's claim first: its probe, a row naming its address, out and named for every
    // worker; then the new release starts. The new release first, giving the rows back before any
    // probe is out, is the last test's case.
    old.drainer.wake()
    await probeOut(asked0)
    const fresh = await startWorker(graphTransport(g.fake, NEW, rate), 'worker-new', NEW)
    fresh.drainer.wake()
    // Each named row asked Graph, or was given back since (an attempt): every claim of them is seen.
    await pollUntil(async () => {
      const requested = new Set(sendsFrom(OLD, asked0).map((q) => q.outboxId))
      const backSince = await t.pool.query<{ id: string }>(
        `select distinct outbox_id::text as id from mailer.email_attempts
          where outbox_id = any($1::bigint[]) and id > $2::bigint`,
        [named, attempts0],
      )
      const seen = new Set([...requested, ...backSince.rows.map((r) => r.id)])
      return requested.size > 0 && named.every((id) => seen.has(id)) ? true : undefined
    }, 30_000)
    const owed = await t.pool.query(
      `select probe_owed as owed from mailer.mailbox_pacing where mailbox = $1`,
      [OLD],
    )
    // The probe alone reached the old mailbox while its probe was owed.
    expect({
      requests: sendsFrom(OLD, asked0).length,
      owed: owed.rows[0]?.owed,
    }).toEqual({ requests: 1, owed: true })
  })
}

test('the new release claims the rows naming the old MAIL_FROM first and gives them back: the old worker, not woken otherwise, is woken by the give-back and probes with one of them, not at its backstop poll', async () => {
  g.fake = await startThrottlingGraph(g, OLD, [OLD, NEW])
  await enqueue(t)
  const old = await startWorker(graphTransport(g.fake, OLD, '0'), 'worker-old', OLD)
  await pausedOwedAndIdle(t, OLD, old)
  const named = await namedRows()
  const fresh = await startWorker(graphTransport(g.fake, NEW, '0'), 'worker-new', NEW)
  await pausedOwedAndIdle(t, OLD, [old, fresh])
  g.fake.setFaults({ pickSendMail: (mailbox) => (mailbox === OLD ? 'hang' : undefined) })
  const asked0 = g.fake.requests.length
  await pauseEndsNamedDue(named)
  // Only the new release is woken: it claims the named rows and gives them back, for a minute, to
  // the old worker's owed probe. The old worker's timers are minutes away (the pause's end it
  // read, its backstop poll): only the give-backs' wake-up brings its claim, which probes.
  fresh.drainer.wake()
  await probeOut(asked0)
  const back = await t.pool.query<{ n: number }>(
    `select count(distinct outbox_id)::int as n from mailer.email_attempts
      where outbox_id = any($1::bigint[]) and error_code = 'mailbox_paused' and worker_id = 'worker-new'`,
    [named],
  )
  expect({ requests: sendsFrom(OLD, asked0).length, givenBack: back.rows[0]!.n > 0 }).toEqual({
    requests: 1,
    givenBack: true,
  })
})
