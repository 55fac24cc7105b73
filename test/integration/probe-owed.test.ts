// A MAIL_FROM pause's end probe is owed by the database: a worker restarted during the pause, or one that never met it, sends no more than the one probe.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import type { Transport } from '../../src/transport-wiring.ts'
import { useTestDb } from '../support/db.ts'
import type { TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { startFakeGraph } from '../support/fake-graph.ts'
import { THROTTLED, useGraphPerTest } from '../support/graph-per-test.ts'
import { endPauseUntilSent } from '../support/owed-pause.ts'
import { graphTransport, startTransportWorker } from '../support/transport-worker.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const MAIL_FROM = 'sender@example.com'
const OWN = 'own@example.com'

const g = useGraphPerTest()

/** Graph throttles every send from MAIL_FROM for 5 minutes; OWN's go. */
async function throttlingGraph(): Promise<Transport> {
  g.fake = await startFakeGraph({
    clientSecret: 'right',
    concurrencyLimit: 1000,
    mailboxes: [OWN, MAIL_FROM],
  })
  const f = g.fake
  return graphTransport(f, MAIL_FROM)
}

/** A worker wired as serve wires Graph (createTransport's sender and shared gate), MAIL_FROM as given. */
async function startWorker(tr: Transport, id: string): Promise<TestEngine> {
  return startTransportWorker(t, g.engines, tr, {
    workerId: id,
    mailFrom: MAIL_FROM,
    sendTimeoutMs: 5_000,
  })
}

const defaultRows = async (n: number) =>
  (
    await t.pool.query<{ id: string }>(
      `select mailer.enqueue_email('{"to":"rcpt@example.com","subject":"Hello","text":"Hi"}'::jsonb)::text as id
         from generate_series(1, $1::int)`,
      [n],
    )
  ).rows.map((x) => x.id)

/** The sendMail requests to MAIL_FROM the fake saw after the first `from`. */
const mailFromSends = (from: number) =>
  (g.fake?.requests ?? [])
    .slice(from)
    .filter((q) => q.kind === 'sendMail' && q.mailbox.toLowerCase() === MAIL_FROM)

/** MAIL_FROM paused for minutes, no row sending, every worker idle. */
async function pausedAndIdle(workers: TestEngine[]) {
  await pollUntil(async () => {
    const p = await t.pool.query(
      `select (select count(*)::int from mailer.mailbox_pacing where mailbox = $1 and next_at > now() + interval '1 minute') as paused,
              (select count(*)::int from mailer.email_outbox where status = 'sending') as sending`,
      [MAIL_FROM],
    )
    return p.rows[0].paused === 1 &&
      p.rows[0].sending === 0 &&
      workers.every((w) => w.drainer.status().inFlight === 0)
      ? true
      : undefined
  }, 30_000)
}

/**
 * The pause ends with MAIL_FROM still throttled, every waiting row due (database time), every
 * worker woken: the probe meets the throttle again and pauses MAIL_FROM anew. Returns the sendMail
 * requests to MAIL_FROM from the end until then.
 */
async function pauseEndsStillThrottled(workers: TestEngine[]) {
  const asked0 = g.fake?.requests.length ?? 0
  await t.pool.query(
    `with p as (update mailer.mailbox_pacing set next_at = now() - interval '1 minute' where mailbox = $1 returning 1)
     update mailer.email_outbox set send_at = now() - interval '1 minute' where status = 'pending'`,
    [MAIL_FROM],
  )
  for (const w of workers) w.drainer.wake()
  await pollUntil(async () => (mailFromSends(asked0).length > 0 ? true : undefined), 30_000)
  await pausedAndIdle(workers)
  return mailFromSends(asked0)
}

describe('a MAIL_FROM pause’s end probe, owed by the database', () => {
  test('a worker restarted during the pause sends one probe at its end, not a batch', async () => {
    const tr = await throttlingGraph()
    g.fake?.setFaults({ pickSendMail: () => THROTTLED })
    await defaultRows(10)
    const first = await startWorker(tr, 'worker-a')
    await pausedAndIdle([first])
    // Restarted (a deploy): the new process has not met the pause.
    await first.stop()
    g.engines.splice(g.engines.indexOf(first), 1)
    const again = await startWorker(tr, 'worker-a')
    const sends = await pauseEndsStillThrottled([again])
    expect(sends).toHaveLength(1)
  })

  test('a second worker that never met the pause sends nothing of MAIL_FROM’s at its end but the one probe between them', async () => {
    const tr = await throttlingGraph()
    g.fake?.setFaults({ pickSendMail: () => THROTTLED })
    await defaultRows(10)
    const a = await startWorker(tr, 'worker-a')
    await pausedAndIdle([a])
    const b = await startWorker(tr, 'worker-b')
    const sends = await pauseEndsStillThrottled([a, b])
    expect(sends).toHaveLength(1)
  })
})

describe('the probe’s verdict', () => {
  test('a probe row that never reaches Graph (past its expiresAt at the pause’s end) is no verdict: the row after it probes, one sendMail while still throttled', async () => {
    const tr = await throttlingGraph()
    g.fake?.setFaults({ pickSendMail: () => THROTTLED })
    const rows = await defaultRows(10)
    const a = await startWorker(tr, 'worker-a')
    await pausedAndIdle([a])
    // The pause ends: the first row due and expired (the probe, settled unsent), the rest 3 s later.
    const asked0 = g.fake?.requests.length ?? 0
    await t.pool.query(
      `with p as (update mailer.mailbox_pacing set next_at = now() - interval '1 minute' where mailbox = $1 returning 1)
       update mailer.email_outbox
          set send_at = case when id = $2 then now() - interval '1 minute' else now() + interval '3 seconds' end,
              expires_at = case when id = $2 then now() end
        where status = 'pending'`,
      [MAIL_FROM, rows[0]],
    )
    a.drainer.wake()
    await pollUntil(async () => (mailFromSends(asked0).length > 0 ? true : undefined), 30_000)
    await pausedAndIdle([a])
    const expired = await t.pool.query('select status from mailer.email_outbox where id = $1', [
      rows[0],
    ])
    expect([expired.rows[0].status, mailFromSends(asked0).length]).toEqual(['failed', 1])
  })

  test('accepted: owed no more, and the backlog goes through every worker, each row once', async () => {
    const tr = await throttlingGraph()
    g.fake?.setFaults({ pickSendMail: () => THROTTLED })
    const rows = await defaultRows(10)
    const a = await startWorker(tr, 'worker-a')
    await pausedAndIdle([a])
    const b = await startWorker(tr, 'worker-b')
    // Graph takes MAIL_FROM's sends again by the pause's end.
    g.fake?.setFaults({})
    await endPauseUntilSent(t, MAIL_FROM, [a, b], rows)
    const sent = (g.fake?.accepted ?? [])
      .filter((x) => x.mailbox === MAIL_FROM)
      .map((x) => x.outboxId)
    expect(sent.sort()).toEqual([...rows].sort())
    const owed = await t.pool.query(
      'select probe_owed, probe_id from mailer.mailbox_pacing where mailbox = $1',
      [MAIL_FROM],
    )
    expect(owed.rows).toEqual([{ probe_owed: false, probe_id: null }])
  })
})
