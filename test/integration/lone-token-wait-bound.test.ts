// A lone worker's registry read in a send or lookup that met Graph's 401 (is another worker alive?) ends by the request's deadline, the database slow or not.
import { afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { monotonicNow, systemClock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { createLoneTokenWait } from '../../src/outbox/lone-token-wait.ts'
import { createSideStatements } from '../../src/outbox/side-statements.ts'
import { createGraphTransport, type GraphTransport } from '../../src/transport/graph-transport.ts'
import { TOKEN_SLOW_CODE } from '../../src/transport/token-slow.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import {
  type FakeGraph,
  generateTestCertificate,
  graphConfigFor,
  startFakeGraph,
  type TestCertificate,
} from '../support/fake-graph.ts'
import { type HandLock, holdHandLock } from '../support/hand-lock.ts'
import { untilLockWaits } from '../support/lock-waits.ts'
import { outboundMail } from '../support/outbound-mail.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })

/**
 * The sends' and lookups' deadline: far below the pool's 30 s statement_timeout, the bound the read
 * had. Long enough that Graph's 401 comes with half of it left on a loaded machine (CI's shared
 * 2 cores): later, graph-request.ts gives the row back token_refused_late before any token wait,
 * and the lone wait under test is never reached (2 s was too short: the 401 came after 1 s).
 */
const REQUEST_TIMEOUT_MS = 8_000
/** How long the test waits for the send's end: past its deadline, short of the pool's statement_timeout. */
const ENDS_WITHIN_MS = 20_000

let cert: TestCertificate
beforeAll(async () => {
  cert = await generateTestCertificate()
})

const ends: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const end of ends.splice(0).reverse()) await end()
})

/** A fake Graph and a transport of it: slow at 200 ms (3 s in production), its requests' deadline REQUEST_TIMEOUT_MS. */
async function graphOf(): Promise<{ fake: FakeGraph; transport: GraphTransport }> {
  const fake = await startFakeGraph({ certificates: [cert.certPem] })
  ends.push(() => fake.stop())
  const transport = createGraphTransport(
    graphConfigFor(fake, {
      certificate: cert.certPem,
      privateKey: cert.keyPem,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
    }),
    'sender@example.com',
    { fetch, clock: systemClock, log: silentLogger, tokenSlowMs: 200 },
  )
  return { fake, transport }
}

/** Its cached token taken, then revoked (Graph answers 401), and every token request after hangs. */
async function revokedRefreshHangs(fake: FakeGraph, transport: GraphTransport): Promise<void> {
  await transport.tokens.getToken()
  fake.setFaults({ token: Array.from({ length: 100 }, () => 'hang' as const) })
  fake.revokeTokens('invalid')
}

/**
 * A worker alone (no other registry entry) whose cached token Graph refuses (revoked) and whose
 * refresh Entra never answers (slow at 200 ms), the registry locked by a hand session (a
 * migration's or an operator's ACCESS EXCLUSIVE lock, a database slow to answer): its wait asks the
 * registry in the send, and the read waits for the lock.
 */
async function aloneWithRegistryLocked(): Promise<{
  transport: GraphTransport
  fake: FakeGraph
  lock: HandLock
  inSend: ReturnType<typeof createLoneTokenWait>['inSend']
  stopping: AbortController
}> {
  const { fake, transport } = await graphOf()
  await revokedRefreshHangs(fake, transport)
  const lock = await holdHandLock(t.url, 'mailer.workers')
  ends.push(() => lock.release())
  const stopping = new AbortController()
  ends.push(async () => stopping.abort())
  // Wired as a drainer wires it: its statements on the route, the bounded read on the pool.
  const { inSend } = createLoneTokenWait({
    db: t.statements.db,
    poolDb: t.db,
    workerId: 'solo:1:abcdef',
    log: silentLogger,
    stopping: stopping.signal,
    besides: createSideStatements(),
    heldForToken: transport.heldForToken,
  })
  return { transport, fake, lock, inSend, stopping }
}

/** `p`'s value, or 'still running' once `ms` have passed without it. */
async function endsWithin<T>(p: Promise<T>, ms: number): Promise<T | 'still running'> {
  let timer: ReturnType<typeof setTimeout> | undefined
  const over = new Promise<'still running'>((resolve) => {
    timer = setTimeout(() => resolve('still running'), ms)
  })
  try {
    return await Promise.race([p, over])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * After the send or lookup ended, the lock still held: no statement of the pool waits for it (the
 * read was cancelled, not left behind) and every client of the pool is back, none in a transaction.
 */
async function nothingLeftBehind(): Promise<void> {
  await pollUntil(async () => {
    const { rows } = await t.pool.query<{ waiting: number; open: number }>(
      `select count(*) filter (where wait_event_type = 'Lock')::int as waiting,
              count(*) filter (where state like 'idle in transaction%')::int as open
         from pg_stat_activity
        where datname = current_database() and application_name <> 'hand-session'
          and pid <> pg_backend_pid()`,
    )
    return rows[0]!.waiting === 0 && rows[0]!.open === 0 ? true : undefined
  })
  await pollUntil(async () => (t.pool.idleCount === t.pool.totalCount ? true : undefined))
}

describe('a worker alone, its registry read stalled behind a lock', () => {
  test('its row whose send met Graph’s 401 goes back token_slow, unsent and uncounted, by the send’s deadline: not left sending until the pool’s statement_timeout', async () => {
    const { fake, transport } = await graphOf()
    const engine = createTestEngine(t, {
      workerId: 'solo-worker',
      deps: {
        sender: transport.sender,
        sendBlockedForMs: transport.blockedForMs,
        sendBlockedBy: transport.blockedBy,
        tokenCame: transport.onTokenCame,
        heldForToken: transport.heldForToken,
      },
    })
    await engine.start()
    ends.push(() => engine.stop(50))
    await revokedRefreshHangs(fake, transport)
    // Its beats wait for the lock too; its claim and settlement do not.
    const lock = await holdHandLock(t.url, 'mailer.workers')
    ends.push(() => lock.release())
    const from = monotonicNow(systemClock)
    await enqueue(t)
    // The row's first history entry, read while the lock stands (bounded: past the deadline,
    // short of the pool's statement_timeout, at which the read used to give up).
    const rows = await pollUntil(async () => {
      const r = await t.pool.query(
        `select o.status, o.attempts, array_agg(a.outcome || ' ' || coalesce(a.error_code, '') order by a.id) as history
           from mailer.email_outbox o join mailer.email_attempts a on a.outbox_id = o.id group by o.id`,
      )
      return r.rowCount !== 0 ? r.rows : undefined
    }, ENDS_WITHIN_MS).catch(() => 'still sending')
    console.log(
      `[lone wait bound] ${(monotonicNow(systemClock) - from).toFixed(0)} ms after it was enqueued (deadline ${REQUEST_TIMEOUT_MS} ms): ${JSON.stringify(rows)}`,
    )
    expect(rows).toEqual([{ status: 'pending', attempts: 0, history: ['throttled token_slow'] }])
    expect(fake.unauthorizedRequests()).toBe(1)
    expect(fake.accepted).toHaveLength(0)
  })

  test('a send that met Graph’s 401 ends by its deadline, given back token_slow unsent, not when the read gives up', async () => {
    const w = await aloneWithRegistryLocked()
    const from = monotonicNow(systemClock)
    let over = false
    const send = w.transport.sender
      .send(outboundMail('sender@example.com'), w.stopping.signal, undefined, w.inSend)
      .finally(() => {
        over = true
      })
    // The read reached the lock (the reproduction's premise), unless the send ended before.
    await untilLockWaits(t.pool, { over: () => over })
    const outcome = await endsWithin(send, ENDS_WITHIN_MS)
    expect(outcome === 'still running' ? outcome : 'ended').toBe('ended')
    console.log(
      `[lone wait bound] send ended ${(monotonicNow(systemClock) - from).toFixed(0)} ms after it began (deadline ${REQUEST_TIMEOUT_MS} ms)`,
    )
    // Unsent (the 401 is Graph's no; no request again), uncounted, due at once: the read
    // unanswered by the deadline reads as "not alone", and the row goes back for anyone.
    expect(outcome).toMatchObject({ kind: 'retry', code: TOKEN_SLOW_CODE, afterMs: 0 })
    expect(w.fake.unauthorizedRequests()).toBe(1)
    expect(w.fake.accepted).toHaveLength(0)
    await nothingLeftBehind()
  })

  test('a mailbox lookup that met Graph’s 401 ends by its deadline too, its row given back token_slow', async () => {
    const w = await aloneWithRegistryLocked()
    let over = false
    const lookup = w.transport.sender
      .lookupSentMessage('sender@example.com', '1', w.stopping.signal, undefined, w.inSend)
      .finally(() => {
        over = true
      })
    await untilLockWaits(t.pool, { over: () => over })
    const verdict = await endsWithin(lookup, ENDS_WITHIN_MS)
    expect(verdict === 'still running' ? verdict : 'ended').toBe('ended')
    expect(verdict).toMatchObject({ unreachable: { kind: 'retry', code: TOKEN_SLOW_CODE } })
    expect(w.fake.unauthorizedRequests()).toBe(1)
    await nothingLeftBehind()
  })

  test('a row before its send goes on once the slow token request ends, not when the read gives up (30 s, then given back)', async () => {
    const fake = await startFakeGraph({ certificates: [cert.certPem] })
    ends.push(() => fake.stop())
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
    const token = transport.tokens.getToken()
    await pollUntil(async () => (transport.heldForToken() !== null ? true : undefined))
    const lock = await holdHandLock(t.url, 'mailer.workers')
    ends.push(() => lock.release())
    const stopping = new AbortController()
    const { beforeSend } = createLoneTokenWait({
      db: t.statements.db,
      poolDb: t.db,
      workerId: 'solo:1:abcdef',
      log: silentLogger,
      stopping: stopping.signal,
      besides: createSideStatements(),
      heldForToken: transport.heldForToken,
    })
    let over = false
    const kept = beforeSend().finally(() => {
      over = true
    })
    await untilLockWaits(t.pool, { over: () => over })
    entra.resolve()
    await token
    // Kept, its token come: the send goes on (false would give it back, a claim more).
    expect(await endsWithin(kept, ENDS_WITHIN_MS)).toBe(true)
  })
})
