// A probe's answer ends MAIL_FROM's owed state at once: the worker that probed claims a batch next, and no claim names a second probe once the first is sent.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { claimBatch } from '../../src/outbox/claim.ts'
import { markSent } from '../../src/outbox/mark-sent.ts'
import { oweProbe, probeAnswered } from '../../src/outbox/owed-probe.ts'
import { useTestDb } from '../support/db.ts'
import { startFakeGraph } from '../support/fake-graph.ts'
import { THROTTLED, useGraphPerTest } from '../support/graph-per-test.ts'
import { endPauseUntilSent, pausedOwedAndIdle } from '../support/owed-pause.ts'
import { enqueueIn, pacing } from '../support/paused-claim-rows.ts'
import { graphTransport, startTransportWorker } from '../support/transport-worker.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
const MAIL_FROM = 'sender@example.com'

const g = useGraphPerTest()

const claimPastPaused = (workerId: string) =>
  claimBatch(t.db, {
    limit: 10,
    workerId,
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
    markStarted: false,
    pausedSender: { key: MAIL_FROM, holdMs: 5_000 },
  })

const owedState = async () =>
  (
    await t.pool.query<{ owed: boolean; probe: string | null }>(
      'select probe_owed as owed, probe_id::text as probe from mailer.mailbox_pacing where mailbox = $1',
      [MAIL_FROM],
    )
  ).rows[0]

test('a probe already sent is answered for every claim: the next claim names no second probe, and the owed state ends', async () => {
  const a = await enqueueIn(t.pool, -3, null)
  await enqueueIn(t.pool, -2, null)
  await enqueueIn(t.pool, -1, null)
  await pacing(t.pool, MAIL_FROM, -60, null)
  await oweProbe(t.db, MAIL_FROM)
  const first = await claimPastPaused('w1')
  expect(first.leases.map((l) => l.id)).toEqual([a])
  // Graph took it (its settlement committed); the answer of the worker that sent it not yet.
  const marked = await markSent(
    t.db,
    [{ id: a, token: first.leases[0]!.token, settlement: { kind: 'sent' }, startedAt: new Date() }],
    'w1',
  )
  expect([...marked.sent]).toEqual([a])
  await claimPastPaused('w2')
  await probeAnswered(t.db, { mailbox: MAIL_FROM, id: a })
  expect(await owedState()).toEqual({ owed: false, probe: null })
})

test('after the probe’s 202 the worker’s very next claim takes a full batch: one single-row probe, no second (three pauses)', async () => {
  g.fake = await startFakeGraph({
    clientSecret: 'right',
    concurrencyLimit: 1000,
    mailboxes: [MAIL_FROM],
  })
  const tr = graphTransport(g.fake, MAIL_FROM)
  const w = await startTransportWorker(t, g.engines, tr, {
    workerId: 'worker-a',
    mailFrom: MAIL_FROM,
    sendTimeoutMs: 5_000,
  })
  // The answer races the worker's next claim: three pauses, each its own chance to lose it.
  const claimsAfterPause: number[][] = []
  for (let round = 0; round < 3; round++) {
    g.fake.setFaults({ pickSendMail: () => THROTTLED })
    const rows = (
      await t.pool.query<{ id: string }>(
        `select mailer.enqueue_email('{"to":"rcpt@example.com","subject":"Hello","text":"Hi"}'::jsonb)::text as id
           from generate_series(1, 30)`,
      )
    ).rows.map((x) => x.id)
    await pausedOwedAndIdle(t, MAIL_FROM, w)
    g.fake.setFaults({})
    const seen0 = w.events.events.length
    await endPauseUntilSent(t, MAIL_FROM, [w], rows)
    claimsAfterPause.push(
      w.events.events
        .slice(seen0)
        .flatMap((e) => (e.type === 'claimed' ? [e.count] : []))
        .slice(0, 2),
    )
    expect(await owedState()).toEqual({ owed: false, probe: null })
  }
  expect(claimsAfterPause).toEqual([
    [1, 10],
    [1, 10],
    [1, 10],
  ])
  // Past the sum of its bounded waits (three rounds of two 30 s polls): on a loaded machine the
  // file's 60 s cut it off mid-round, its worker running on beside the next test, telling nothing.
}, 200_000)
