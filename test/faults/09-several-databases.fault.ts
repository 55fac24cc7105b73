// Scenario 9: one process, two databases; one is stopped: the other keeps sending and readiness names the one down.
import { afterAll, expect } from 'bun:test'
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

afterAll(cleanupAll)

test('two databases: one stops, the other keeps sending; readiness says which is down', async () => {
  const alpha = await ownCluster('alpha')
  const beta = await sharedDatabase('beta')
  const graph = await startGraph()
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

  // Both databases number their rows from 1: tell them apart by the X-Outbox-Id plus the subject.
  const keys = graph.fake.accepted.map((a) => {
    const message = a.body.message as { subject: string }
    return `${a.outboxId}|${message.subject}`
  })
  const duplicates = keys.length - new Set(keys).size
  report('9 several databases', {
    sentAlpha: 40,
    sentBeta: 120,
    duplicates,
    betaWhileAlphaDown: seconds(betaMs),
    alphaDownFor: seconds(startedAt - stoppedAt),
    recover: seconds(recoverMs),
  })
  expect(keys.length).toBe(160)
  expect(duplicates).toBe(0)
  mailer.proc.kill('SIGTERM')
  expect(await mailer.exited).toBe(0)
}, 120_000)
