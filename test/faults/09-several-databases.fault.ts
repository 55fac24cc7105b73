// Scenario 9: one process, two databases; one is stopped: the other keeps sending and readiness names the one down.
import { afterAll, expect, setDefaultTimeout } from 'bun:test'
import type { AcceptedMessage } from '../support/fake-graph.ts'
import {
  allSent,
  cleanupAll,
  enqueue,
  FAST,
  ownCluster,
  report,
  seconds,
  sharedDatabase,
  spawnMailer,
  startGraph,
  within,
} from './harness.ts'
import { test } from './kept-evidence.ts'
import { sendCounts } from './send-counts.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). CI's --timeout
// (.ci/run): the bound of the hooks (cleanupAll); each scenario passes its own.
setDefaultTimeout(180_000)
afterAll(cleanupAll)

test('two databases: one stops, the other keeps sending; readiness says which is down', async () => {
  const alpha = await ownCluster('alpha')
  const beta = await sharedDatabase('beta')
  const graph = await startGraph()
  // Both databases number their rows from 1: each one's acceptances are told by the subject's tag
  // (enqueue's), for their send counts and a failure's evidence.
  const subject = (a: AcceptedMessage) => (a.body.message as { subject: string }).subject
  alpha.db.ownsAcceptance = (a) => subject(a).startsWith('alpha ')
  beta.ownsAcceptance = (a) => subject(a).startsWith('beta ')
  const mailer = await spawnMailer('two-dbs', {
    MAILER_DATABASES: JSON.stringify([
      { name: 'alpha', url: alpha.db.url },
      { name: 'beta', url: beta.url },
    ]),
    ...graph.env,
    ...FAST,
  })
  await mailer.waitReady()
  // Outbox ids are per database: each batch gets its own subject tag to tell the databases apart.
  const first = [
    ...(await enqueue(alpha.db, 20, { tag: 'alpha' })),
    ...(await enqueue(beta, 20, { tag: 'beta' })),
  ]
  await allSent(alpha.db, first.slice(0, 20), 10_000, [mailer])
  await allSent(beta, first.slice(20), 10_000, [mailer])

  await alpha.stop()
  const stoppedAt = performance.now()
  const down = await within(
    '/readyz 503 with alpha down and beta ready',
    10_000,
    async () => {
      const r = await mailer.readyz()
      const by = Object.fromEntries((r.body?.databases ?? []).map((d) => [d.name, d]))
      return r.status === 503 && by.alpha?.ready === false && by.beta?.ready === true
        ? by
        : undefined
    },
    { mailers: [mailer] },
  )
  expect(down.alpha).toMatchObject({
    reachable: false,
    problem: expect.stringMatching(/^database unreachable \(/),
  })

  const t0 = performance.now()
  const whileDown = await enqueue(beta, 100, { tag: 'beta while alpha is down' })
  await allSent(beta, whileDown, 15_000, [mailer])
  const betaMs = performance.now() - t0
  expect((await mailer.readyz()).status).toBe(503)

  await alpha.start()
  const startedAt = performance.now()
  await mailer.waitReady(40_000)
  const back = await enqueue(alpha.db, 20, { tag: 'alpha after' })
  await allSent(alpha.db, back, 20_000, [mailer])
  const recoverMs = performance.now() - startedAt

  // Each database's acceptances read against its own attempt history. AMBIGUOUS_SEND_POLICY=resend
  // (the default): a send whose request outlived GRAPH_REQUEST_TIMEOUT_SECONDS on a loaded machine
  // may have been taken, and is sent again.
  const alphaSends = await sendCounts(alpha.db, graph, [...first.slice(0, 20), ...back])
  const betaSends = await sendCounts(beta, graph, [...first.slice(20), ...whileDown])
  const ambiguousResends = alphaSends.ambiguousResends + betaSends.ambiguousResends
  const keys = graph.fake.accepted.map((a) => `${a.outboxId}|${subject(a)}`)
  report('9 several databases', {
    sentAlpha: 40,
    sentBeta: 120,
    duplicates: keys.length - new Set(keys).size,
    ambiguousResends,
    betaWhileAlphaDown: seconds(betaMs),
    alphaDownFor: seconds(startedAt - stoppedAt),
    recover: seconds(recoverMs),
  })
  expect(new Set(keys).size).toBe(160)
  expect([...alphaSends.doubleSends, ...betaSends.doubleSends]).toEqual([])
  expect(keys.length).toBe(160 + ambiguousResends)
  mailer.proc.kill('SIGTERM')
  expect(await mailer.exited).toBe(0)
}, 120_000)
