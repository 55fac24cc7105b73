// A worker alone whose rows wait for its slow token request asks the registry whether another worker could take them: its stop waits for that read's answer, not resolves with it running.
import { afterEach, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { systemClock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { createPgSendGate } from '../../src/outbox/pg-send-gate.ts'
import { createGraphTransport } from '../../src/transport/graph-transport.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import {
  generateTestCertificate,
  graphConfigFor,
  startFakeGraph,
  type TestCertificate,
} from '../support/fake-graph.ts'
import { heldWhenStopped, openAnswerHoldingHandle } from '../support/stop-with-answer-held.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })

let cert: TestCertificate
beforeAll(async () => {
  cert = await generateTestCertificate()
})

const ends: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const end of ends.splice(0).reverse()) await end()
})

/** The registry read (lone-token-wait.ts: anotherWorkerLive), as its text goes to the server. */
const REGISTRY_READ = 'select exists (select from mailer.workers w'

test('a stop while its row waits for the slow token request resolves only once the registry read that row began has answered', async () => {
  const held = await openAnswerHoldingHandle(t)
  ends.push(() => held.close())
  const fake = await startFakeGraph({ certificates: [cert.certPem] })
  ends.push(() => fake.stop())
  // Entra never answers: slow at 200 ms (3 s in production), the row waits for it.
  const entra = Promise.withResolvers<void>()
  ends.push(async () => entra.resolve())
  const slowEntra = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input)
    if (url.includes('/oauth2/v2.0/token')) await entra.promise
    return fetch(input, init)
  }) as typeof fetch
  const transport = createGraphTransport(
    graphConfigFor(fake, { certificate: cert.certPem, privateKey: cert.keyPem }),
    'sender@example.com',
    { fetch: slowEntra, clock: systemClock, log: silentLogger, tokenSlowMs: 200 },
  )
  const gate = createPgSendGate({
    db: t.statements.db,
    clock: systemClock,
    log: silentLogger,
    holder: 'solo-worker',
    maxConcurrency: 4,
    ratePerMinute: 0,
    slotTtlMs: 20_000,
  })
  // Its statements, the registry read among them, through the proxy (serve's route and pool).
  const engine = createTestEngine(t, {
    workerId: 'solo-worker',
    handle: held.handle,
    deps: {
      sender: transport.sender,
      gate,
      sendBlockedForMs: transport.blockedForMs,
      sendBlockedBy: transport.blockedBy,
      tokenCame: transport.onTokenCame,
      heldForToken: transport.heldForToken,
    },
  })
  await engine.start()
  // The database slow to answer that read alone (a server overloaded, a network slow).
  held.proxy.holdAnswerOnceAt(REGISTRY_READ)
  const id = await enqueue(t)
  await pollUntil(async () => (held.proxy.holding() ? true : undefined))
  expect(engine.drainer.status().inFlight).toBe(1)
  const heldAtStop = await heldWhenStopped(held.proxy, () => engine.stop(50), {
    // Its row released, its entry gone: all the stop does but wait for the read.
    woundDown: async () => {
      const r = await t.pool.query(
        `select (select count(*) from mailer.workers)::int as workers,
                (select status from mailer.email_outbox where id = $1) as status`,
        [id],
      )
      return r.rows[0].workers === 0 && r.rows[0].status === 'pending'
    },
  })
  expect({ heldWhenStopped: heldAtStop }).toEqual({ heldWhenStopped: false })
  // Released as a stop releases any unstarted row.
  const history = await t.pool.query('select outcome from mailer.email_attempts')
  expect(history.rows).toEqual([{ outcome: 'released' }])
})
