// A worker waiting for MAIL_FROM's owed probe's kept row is woken by the API's cancel of that row: the probe is owed no more without waiting for its poll.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { loadConfig } from '../../src/config.ts'
import { createLogger } from '../../src/log.ts'
import { cancelMatching } from '../../src/outbox/bulk-cancel.ts'
import { cancelOutbox } from '../../src/outbox/cancel.ts'
import { createTransport } from '../../src/transport-wiring.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, type TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import { graphEnvFor, startFakeGraph } from '../support/fake-graph.ts'
import { useGraphPerTest } from '../support/graph-per-test.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const MAIL_FROM = 'sender@example.com'

const g = useGraphPerTest()

/** A worker wired as serve wires Graph (its gate pauses MAIL_FROM), its poll 600 s off (the test engine's). */
async function startWorker(): Promise<TestEngine> {
  g.fake = await startFakeGraph({
    clientSecret: 'right',
    concurrencyLimit: 1000,
    mailboxes: [MAIL_FROM],
  })
  const config = loadConfig(
    {
      ...graphEnvFor(g.fake),
      MAIL_FROM,
      GRAPH_CLIENT_SECRET: 'right',
      MAILBOX_RATE_PER_MINUTE: '0',
    },
    { requireDatabase: false },
  )
  const tr = createTransport(
    config,
    createLogger('error', () => {}),
  )
  const engine = createTestEngine(t, {
    deps: {
      log: createLogger('error', () => {}),
      sender: tr.senderFor('test'),
      gate: tr.gateFor(t, 'worker-a'),
      lookup: tr.lookupFor('test'),
      sendBlockedForMs: tr.blockedForMs,
      sendTimeoutMs: 5_000,
      mailFrom: MAIL_FROM,
    },
    workerId: 'worker-a',
  })
  await engine.start()
  g.engines.push(engine)
  return engine
}

/** A row due `inSeconds` from now in database time, MAIL_FROM's (no from) or naming `from`. */
const enqueueIn = async (inSeconds: number, from?: string) =>
  (
    await t.pool.query<{ id: string }>(
      `select mailer.enqueue_email(jsonb_build_object('to', 'rcpt@example.com', 'subject', 'Hello', 'text', 'Hi')
                                     || coalesce(jsonb_build_object('from', $2::text), '{}'),
                                   jsonb_build_object('sendAt', now() + make_interval(secs => $1::float8)))::text as id`,
      [inSeconds, from ?? null],
    )
  ).rows[0]!.id

/**
 * MAIL_FROM's pause over, its probe owed, its only row 10 minutes off; a worker waiting for it. (A
 * due row naming MAIL_FROM's address is no longer held by this wait: it probes, since 0082.)
 */
async function waitingForFarRow() {
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, probe_owed) values ($1, now() - interval '1 minute', true)`,
    [MAIL_FROM],
  )
  const far = await enqueueIn(600)
  await startWorker()
  // The worker's claim kept the far row's time and waits for it.
  await pollUntil(async () => {
    const p = await t.pool.query(
      'select probe_due_at from mailer.mailbox_pacing where mailbox = $1',
      [MAIL_FROM],
    )
    return p.rows[0]?.probe_due_at != null ? true : undefined
  }, 30_000)
  return far
}

/** MAIL_FROM's probe owed no more: the woken worker's claim searched again and found nothing pending. */
const owedNoMore = () =>
  pollUntil(async () => {
    const p = await t.pool.query(
      'select probe_owed from mailer.mailbox_pacing where mailbox = $1',
      [MAIL_FROM],
    )
    return p.rows[0]?.probe_owed === false ? true : undefined
  }, 30_000)

test('the kept row cancelled through the API, nothing else of MAIL_FROM’s pending: the waiting worker is woken and owes the probe no more at once', async () => {
  const far = await waitingForFarRow()
  await cancelOutbox(t.db, far, null)
  await owedNoMore()
  expect(g.fake?.accepted).toEqual([])
})

test('the kept row cancelled by a bulk cancel: the same', async () => {
  const far = await waitingForFarRow()
  const r = await cancelMatching(t.db, { ids: [far] }, null, { limit: 10 })
  expect(r.items).toEqual([{ id: far, outcome: 'cancelled' }])
  await owedNoMore()
  expect(g.fake?.accepted).toEqual([])
})
