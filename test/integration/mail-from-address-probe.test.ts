// After MAIL_FROM's pause, a due row naming MAIL_FROM's own address probes the mailbox when MAIL_FROM's first row without a sender key is not due yet: one request until its answer.
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { Transport } from '../../src/transport-wiring.ts'
import { useTestDb } from '../support/db.ts'
import type { TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { startFakeGraph } from '../support/fake-graph.ts'
import { THROTTLED, useGraphPerTest } from '../support/graph-per-test.ts'
import { pausedOwedAndIdle } from '../support/owed-pause.ts'
import { graphTransport, startTransportWorker } from '../support/transport-worker.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const MAIL_FROM = 'sender@example.com'

const g = useGraphPerTest()

async function graph(): Promise<Transport> {
  g.fake = await startFakeGraph({
    clientSecret: 'right',
    concurrencyLimit: 1000,
    mailboxes: [MAIL_FROM],
  })
  return graphTransport(g.fake, MAIL_FROM)
}

async function startWorker(tr: Transport, id: string): Promise<TestEngine> {
  return startTransportWorker(t, g.engines, tr, {
    workerId: id,
    mailFrom: MAIL_FROM,
    sendTimeoutMs: 5_000,
  })
}

/** `n` rows naming MAIL_FROM's own address (a sender key equal to MAIL_FROM's pause key). */
const namedRows = async (n: number) =>
  (
    await t.pool.query<{ id: string }>(
      `select mailer.enqueue_email(jsonb_build_object('to', 'rcpt@example.com', 'subject', 'Hello', 'text', 'Hi',
                                                      'from', $1::text))::text as id
         from generate_series(1, $2::int)`,
      [MAIL_FROM, n],
    )
  ).rows.map((x) => x.id)

const mailFromSends = (from: number) =>
  (g.fake?.requests ?? [])
    .slice(from)
    .filter((q) => q.kind === 'sendMail' && q.mailbox.toLowerCase() === MAIL_FROM)

const count = async (where: string, ids: string[]) =>
  (
    await t.pool.query<{ n: number }>(
      `select count(*)::int as n from mailer.email_outbox where id = any($1::bigint[]) and ${where}`,
      [ids],
    )
  ).rows[0]!.n

/**
 * Graph throttles MAIL_FROM: its probe owed, every worker idle. Then the pause ends with the rows
 * naming MAIL_FROM's address due and MAIL_FROM's one row without a sender key two days out.
 */
async function pauseEndsWithOnlyNamedRowsDue(
  workers: TestEngine[],
  named: string[],
  graphThen: () => void,
) {
  await pausedOwedAndIdle(t, MAIL_FROM, workers)
  graphThen()
  const later = await t.pool.query<{ id: string }>(
    `select mailer.enqueue_email('{"to":"rcpt@example.com","subject":"Hello","text":"Hi"}'::jsonb,
                                 jsonb_build_object('sendAt', now() + interval '2 days'))::text as id`,
  )
  const asked0 = g.fake?.requests.length ?? 0
  await t.pool.query(
    `with p as (update mailer.mailbox_pacing set next_at = now() - interval '1 minute' where mailbox = $1 returning 1)
     update mailer.email_outbox set send_at = now() - interval '1 minute' where id = any($2::bigint[])`,
    [MAIL_FROM, named],
  )
  for (const w of workers) w.drainer.wake()
  return { asked0, later: later.rows[0]!.id }
}

test('Graph takes MAIL_FROM’s sends again: the rows naming its address go, not held for its row two days out', async () => {
  const tr = await graph()
  g.fake?.setFaults({ pickSendMail: () => THROTTLED })
  const named = await namedRows(5)
  const a = await startWorker(tr, 'worker-a')
  const b = await startWorker(tr, 'worker-b')
  const { later } = await pauseEndsWithOnlyNamedRowsDue([a, b], named, () => g.fake?.setFaults({}))
  await pollUntil(
    async () => ((await count(`status = 'sent'`, named)) === 5 ? true : undefined),
    20_000,
  )
  const rest = await t.pool.query(
    `select (select status from mailer.email_outbox where id = $2) as later,
            (select probe_owed from mailer.mailbox_pacing where mailbox = $1) as owed`,
    [MAIL_FROM, later],
  )
  expect(rest.rows).toEqual([{ later: 'pending', owed: false }])
})

test('Graph throttles MAIL_FROM still: one row naming its address probes, one sendMail, the rest wait for the new pause', async () => {
  const tr = await graph()
  g.fake?.setFaults({ pickSendMail: () => THROTTLED })
  const named = await namedRows(5)
  const a = await startWorker(tr, 'worker-a')
  const b = await startWorker(tr, 'worker-b')
  const { asked0 } = await pauseEndsWithOnlyNamedRowsDue([a, b], named, () => {})
  await pollUntil(async () => (mailFromSends(asked0).length > 0 ? true : undefined), 20_000)
  // Paused anew by the probe's answer, nothing sending: every claim since read the new pause.
  await pausedOwedAndIdle(t, MAIL_FROM, [a, b])
  expect([mailFromSends(asked0).length, await count(`status = 'pending'`, named)]).toEqual([1, 5])
})
