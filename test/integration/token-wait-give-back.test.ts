// A worker whose Entra token request hangs gives its claimed rows back to workers with a token, and claims no more meanwhile.
import { afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { monotonicNow, systemClock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { BEAT_LATE_SECONDS } from '../../src/outbox/entry-alive-now.ts'
import { anotherWorkerLive } from '../../src/outbox/lone-token-wait.ts'
import { createPgSendGate } from '../../src/outbox/pg-send-gate.ts'
import { createGraphTransport, type GraphTransport } from '../../src/transport/graph-transport.ts'
import { type BoundedLatch, boundedLatches } from '../support/bounded-latches.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, type TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'
import {
  type FakeGraph,
  generateTestCertificate,
  graphConfigFor,
  startFakeGraph,
  type TestCertificate,
} from '../support/fake-graph.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })

let cert: TestCertificate
beforeAll(async () => {
  cert = await generateTestCertificate()
})

interface GraphWorker {
  fake: FakeGraph
  transport: GraphTransport
  engine: TestEngine
}
const started: GraphWorker[] = []
afterEach(async () => {
  for (const w of started.splice(0)) {
    await w.engine.stop(50)
    await w.fake.stop()
  }
})

/**
 * A worker wired as `serve` wires Graph (its own fake Entra and Graph, the shared Postgres send
 * gate, the real clock: the token request's 30 s deadline is real), `hang`: its token endpoint
 * never answers; `tokenAnswered`: Entra's answers wait for it (and `tokenSlowMs` the transport's).
 */
async function graphWorker(
  name: string,
  o: {
    hang: boolean
    /** Entra's answer to each token request waits for what it returns (none: at once). */
    tokenAnswered?: () => Promise<void> | undefined
    tokenSlowMs?: number
    /** Its Graph requests' deadline (graphConfigFor's 5 s unless given). */
    requestTimeoutMs?: number
    /** It looks an interrupted send up in the mailbox (graphConfigFor's GRAPH_MAILBOX_LOOKUP), as `serve` wires it. */
    mailboxLookup?: true
  },
): Promise<GraphWorker> {
  const fake = await startFakeGraph({ certificates: [cert.certPem] })
  if (o.hang) fake.setFaults({ token: Array.from({ length: 100 }, () => 'hang' as const) })
  const slowEntra = (async (input: string | URL | Request, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input)
    if (url.includes('/oauth2/v2.0/token')) await o.tokenAnswered?.()
    return fetch(input, init)
  }) as typeof fetch
  const transport = createGraphTransport(
    graphConfigFor(fake, {
      certificate: cert.certPem,
      privateKey: cert.keyPem,
      ...(o.requestTimeoutMs !== undefined && { requestTimeoutMs: o.requestTimeoutMs }),
    }),
    'sender@example.com',
    {
      fetch: slowEntra,
      clock: systemClock,
      log: silentLogger,
      ...(o.tokenSlowMs !== undefined && { tokenSlowMs: o.tokenSlowMs }),
    },
  )
  const gate = createPgSendGate({
    db: t.statements.db,
    clock: systemClock,
    log: silentLogger,
    holder: name,
    maxConcurrency: 4,
    ratePerMinute: 0,
    slotTtlMs: 20_000,
  })
  const engine = createTestEngine(t, {
    workerId: name,
    deps: {
      sender: transport.sender,
      gate,
      sendBlockedForMs: transport.blockedForMs,
      sendBlockedBy: transport.blockedBy,
      tokenCame: transport.onTokenCame,
      heldForToken: transport.heldForToken,
      ...(o.mailboxLookup && {
        lookup: (mail, signal, kept) =>
          transport.sender.lookupSentMessage(mail.from.address, mail.outboxId, signal, mail, kept),
      }),
    },
  })
  const w = { fake, transport, engine }
  started.push(w)
  await engine.start()
  return w
}

const statusCounts = async () =>
  (
    await t.pool.query<{ status: string; n: number }>(
      'select status, count(*)::int as n from mailer.email_outbox group by 1 order by 1',
    )
  ).rows

/**
 * A moment for the give-back a worker alone must not make (each row's history would have its
 * entry: a bounded look, as none comes), then Entra's answer let go and every row sent.
 */
async function keptThenSent(entra: BoundedLatch): Promise<void> {
  const lookedFrom = monotonicNow(systemClock)
  while (monotonicNow(systemClock) - lookedFrom < 500) {
    const n = await t.pool.query('select 1 from mailer.email_attempts')
    if (n.rowCount !== 0) break
  }
  entra.resolve()
  await pollUntil(async () => {
    const c = await statusCounts()
    return c.length === 1 && c[0]!.status === 'sent' ? true : undefined
  })
}

/** The rows `w` has claimed, each claim's count summed. */
const claimedBy = (w: GraphWorker) =>
  w.engine.events.events.reduce((n, e) => n + (e.type === 'claimed' ? e.count : 0), 0)

/** `n` rows enqueued in one statement: a worker's one claim takes them all. */
const enqueueAll = (n: number) =>
  t.pool.query(
    `select mailer.enqueue_email($1::jsonb, '{}'::jsonb) from generate_series(1, $2::int)`,
    [JSON.stringify({ to: 'rcpt@example.com', subject: 'Hello', text: 'Hi there' }), n],
  )

/**
 * `n` rows whose earlier send was interrupted (send_started_at two minutes ago, past the lookup
 * grace), committed at once: a worker's one claim takes them all and looks each up first.
 */
async function enqueueInterrupted(n: number): Promise<void> {
  const c = await t.pool.connect()
  try {
    await c.query('begin')
    await c.query(
      `select mailer.enqueue_email($1::jsonb, '{}'::jsonb) from generate_series(1, $2::int)`,
      [JSON.stringify({ to: 'rcpt@example.com', subject: 'Hello', text: 'Hi there' }), n],
    )
    await c.query(`update mailer.email_outbox set send_started_at = now() - interval '2 minutes'`)
    await c.query('commit')
  } finally {
    c.release()
  }
}

/** Each row's status, attempts and history (outcome and code), in id order. */
const histories = async () =>
  (
    await t.pool.query(
      `select o.status, o.attempts, array_agg(a.outcome || ' ' || coalesce(a.error_code, '') order by a.id) as history
         from mailer.email_outbox o join mailer.email_attempts a on a.outbox_id = o.id
        group by o.id order by o.id`,
    )
  ).rows

/** Every row sent, or `hung`'s token request over (its 30 s deadline), whichever first. */
const sentOrRequestOver = (hung: GraphWorker) =>
  pollUntil(async () => {
    if (hung.transport.tokens.lastError() !== null) return true
    const c = await statusCounts()
    return c.length === 1 && c[0]!.status === 'sent' ? true : undefined
  }, 45_000)

describe('Entra hangs for one worker, not for another', () => {
  const ROWS = 5

  test('the rows the hung worker claimed are sent by the other within seconds, not after the token request’s 30 s', async () => {
    // The working worker's entry live before the hung worker's request turns slow, whatever the
    // machine's load: a worker alone keeps its rows (lone-token-wait.ts). Its start beats into it.
    await t.pool.query(
      `insert into mailer.workers (id, host, pid, version, lease_seconds) values ('working-worker', 'test', 1, 'test', 30)`,
    )
    const hung = await graphWorker('hung-worker', { hang: true })
    for (let i = 0; i < ROWS; i++) await enqueue(t)
    // The hung worker holds every row, waiting for the token its request never gets.
    await pollUntil(async () =>
      hung.fake.tokenRequests.length === 1 && hung.engine.drainer.status().inFlight === ROWS
        ? true
        : undefined,
    )
    const since = monotonicNow(systemClock)
    const working = await graphWorker('working-worker', { hang: false })
    await sentOrRequestOver(hung)
    console.log(
      `[token wait] ${ROWS} rows: ${JSON.stringify(await statusCounts())} ${(monotonicNow(systemClock) - since).toFixed(0)} ms after the working worker started`,
    )
    // Sent while the hung worker's request still hangs: its rows did not wait out its deadline.
    expect(hung.transport.tokens.lastError()?.code ?? null).toBeNull()
    expect(await statusCounts()).toEqual([{ status: 'sent', n: ROWS }])
    expect(working.fake.accepted).toHaveLength(ROWS)
    expect(hung.fake.accepted).toHaveLength(0)
    // The hung worker claimed nothing more while its request hung (the rows it gave back were due
    // at once, and its own wakes came), and asked Entra nothing more.
    expect(claimedBy(hung)).toBe(ROWS)
    expect(hung.fake.tokenRequests).toHaveLength(1)
    // Each row: its wait given back uncounted (one entry), then its send, the first attempt.
    const rows = await t.pool.query(
      `select o.attempts, array_agg(a.outcome || ' ' || coalesce(a.error_code, '') order by a.id) as history
         from mailer.email_outbox o join mailer.email_attempts a on a.outbox_id = o.id
        group by o.id, o.attempts`,
    )
    expect(new Set(rows.rows.map((r) => JSON.stringify(r)))).toEqual(
      new Set([JSON.stringify({ attempts: 1, history: ['throttled token_slow', 'sent '] })]),
    )
  })
})

/**
 * A worker whose cached token Graph refuses (revoked) and whose refresh Entra hangs, another live
 * worker with a token: `rows` enqueued in one statement, its one claim takes them all before the
 * refresh turns slow, after which it claims none (a row enqueued later went to the other worker, no
 * token_slow entry). Each row given back uncounted at the slow refresh (one entry), then sent by
 * the other, while the hung worker's request still hangs: not at its deadline. `interrupted`: the
 * rows' earlier send was interrupted, and each is looked up first (its lookup meets the 401).
 */
async function givenBackToAPeer(
  rows: number,
  o: { interrupted?: true } = {},
): Promise<{ hung: GraphWorker; working: GraphWorker }> {
  await t.pool.query(
    `insert into mailer.workers (id, host, pid, version, lease_seconds) values ('working-worker', 'test', 1, 'test', 30)`,
  )
  // Slow at 200 ms (3 s in production); its requests' deadline 12 s (30 s in production), which a
  // row whose send met the 401 waited out for the refresh.
  const lookups = o.interrupted && { mailboxLookup: true as const }
  const hung = await graphWorker('hung-worker', {
    hang: false,
    tokenSlowMs: 200,
    requestTimeoutMs: 12_000,
    ...lookups,
  })
  await hung.transport.tokens.getToken()
  hung.fake.setFaults({ token: Array.from({ length: 100 }, () => 'hang' as const) })
  hung.fake.revokeTokens('invalid')
  await (o.interrupted ? enqueueInterrupted(rows) : enqueueAll(rows))
  // Its sends (or lookups) met Graph's 401 to the revoked token; the one refresh hangs.
  await pollUntil(async () =>
    hung.fake.unauthorizedRequests() >= 1 &&
    hung.fake.tokenRequests.length === 2 &&
    claimedBy(hung) === rows
      ? true
      : undefined,
  )
  const working = await graphWorker('working-worker', { hang: false, ...lookups })
  await sentOrRequestOver(hung)
  expect(await histories()).toEqual(
    Array.from({ length: rows }, () => ({
      status: 'sent',
      attempts: 1,
      history: ['throttled token_slow', 'sent '],
    })),
  )
  expect(hung.transport.tokens.lastError()?.code ?? null).toBeNull()
  expect(working.fake.accepted).toHaveLength(rows)
  expect(hung.fake.accepted).toHaveLength(0)
  return { hung, working }
}

describe('Graph refuses the cached token and Entra hangs for its refresh', () => {
  test('the rows whose send met the 401 go back token_slow once the refresh turns slow, for a worker with a token, not at their request’s deadline', async () => {
    await givenBackToAPeer(4)
  })
})

/**
 * A worker alone whose cached token Graph refuses (revoked), every token request after its first
 * answered once `refresh` resolves: `rows` enqueued in one statement (one claim), a send met the
 * 401 and the one refresh turned slow (200 ms; 3 s in production). The rows whose send came after
 * the 401 wait for the refresh before their send (ready), the others in it. `interrupted`: the
 * rows' earlier send was interrupted, and the worker looks each up first (its lookup meets the 401).
 */
async function revokedAlone(
  rows: number,
  refresh: Promise<void>,
  o: { interrupted?: true } = {},
): Promise<GraphWorker> {
  let held: Promise<void> | undefined
  // Its requests' deadline 12 s (30 s in production), which each send or lookup waits within.
  const solo = await graphWorker('solo-worker', {
    hang: false,
    tokenAnswered: () => held,
    tokenSlowMs: 200,
    requestTimeoutMs: 12_000,
    ...(o.interrupted && { mailboxLookup: true }),
  })
  await solo.transport.tokens.getToken()
  held = refresh
  solo.fake.revokeTokens('invalid')
  await (o.interrupted ? enqueueInterrupted(rows) : enqueueAll(rows))
  await pollUntil(async () =>
    solo.fake.unauthorizedRequests() >= 1 && solo.transport.heldForToken() !== null
      ? true
      : undefined,
  )
  return solo
}

describe('Entra slow for a worker alone', () => {
  test('its rows wait for its token as before: no give-back to itself, no history entry, no second claim', async () => {
    const ROWS = 5
    // Bounded and named from here: the steps before it is let go are two 10 s polls at most.
    const entra = boundedLatches(30_000).make('Entra’s answer let go by the test')
    const tokenAnswered = entra.wait()
    // Its token request's to wait for it; a test that failed before leaves the run-out to no one.
    tokenAnswered.catch(() => undefined)
    // Slow at 200 ms (3 s in production): the same path, without 3 s of a test's time.
    const solo = await graphWorker('solo-worker', {
      hang: false,
      tokenAnswered: () => tokenAnswered,
      tokenSlowMs: 200,
    })
    for (let i = 0; i < ROWS; i++) await enqueue(t)
    await pollUntil(async () => (solo.engine.drainer.status().inFlight === ROWS ? true : undefined))
    // Its token request turned slow with the rows in hand.
    await pollUntil(async () => (solo.transport.heldForToken() !== null ? true : undefined))
    await keptThenSent(entra)
    expect(solo.fake.accepted).toHaveLength(ROWS)
    const rows = await t.pool.query(
      `select o.attempts, array_agg(a.outcome || ' ' || coalesce(a.error_code, '') order by a.id) as history
         from mailer.email_outbox o join mailer.email_attempts a on a.outbox_id = o.id
        group by o.id, o.attempts`,
    )
    expect(new Set(rows.rows.map((r) => JSON.stringify(r)))).toEqual(
      new Set([JSON.stringify({ attempts: 1, history: ['sent '] })]),
    )
    expect(claimedBy(solo)).toBe(ROWS)
  })

  test('the rows whose send met Graph’s 401 wait for the refresh too: no give-back to itself, no token_slow entry, one claim', async () => {
    const ROWS = 3
    const entra = boundedLatches(30_000).make('Entra’s answer to the refresh let go by the test')
    const refresh = entra.wait()
    // A test that failed before leaves the run-out to no one.
    refresh.catch(() => undefined)
    const solo = await revokedAlone(ROWS, refresh)
    await keptThenSent(entra)
    const rows = await t.pool.query(
      `select o.attempts, array_agg(a.outcome || ' ' || coalesce(a.error_code, '') order by a.id) as history
         from mailer.email_outbox o join mailer.email_attempts a on a.outbox_id = o.id
        group by o.id order by o.id`,
    )
    expect(rows.rows).toEqual(
      Array.from({ length: ROWS }, () => ({ attempts: 1, history: ['sent '] })),
    )
    expect(claimedBy(solo)).toBe(ROWS)
    expect(solo.fake.accepted).toHaveLength(ROWS)
    // One refresh, its token taken by every row's send again.
    expect(solo.fake.tokenRequests).toHaveLength(2)
  })

  test('a stop while those sends wait for the refresh releases their rows unsent and uncounted, at once, not at their deadline', async () => {
    const solo = await revokedAlone(3, new Promise<void>(() => {}))
    // The grace longer than the sends' 12 s deadline: the stop itself ends their wait.
    const stoppedFrom = monotonicNow(systemClock)
    await solo.engine.stop(30_000)
    expect(monotonicNow(systemClock) - stoppedFrom).toBeLessThan(10_000)
    expect(await statusCounts()).toEqual([{ status: 'pending', n: 3 }])
    const history = await t.pool.query('select outcome, error_code from mailer.email_attempts')
    expect(history.rows).toEqual([0, 1, 2].map(() => ({ outcome: 'released', error_code: null })))
    const attempts = await t.pool.query('select attempts from mailer.email_outbox')
    expect(attempts.rows.map((r) => r.attempts)).toEqual([0, 0, 0])
  })

  test('a stop while it waits releases its rows unsent and uncounted, at once', async () => {
    const solo = await graphWorker('solo-worker', {
      hang: false,
      tokenAnswered: () => new Promise<void>(() => {}),
      tokenSlowMs: 200,
    })
    const ids: string[] = []
    for (let i = 0; i < 3; i++) ids.push(await enqueue(t))
    await pollUntil(async () => (solo.engine.drainer.status().inFlight === 3 ? true : undefined))
    await pollUntil(async () => (solo.transport.heldForToken() !== null ? true : undefined))
    const stoppedFrom = monotonicNow(systemClock)
    await solo.engine.stop(50)
    // Within the stop's grace and its statements, not the token request's 30 s deadline.
    expect(monotonicNow(systemClock) - stoppedFrom).toBeLessThan(10_000)
    expect(await statusCounts()).toEqual([{ status: 'pending', n: 3 }])
    // Released as a stop releases any unstarted row: no token_slow entry.
    const history = await t.pool.query('select outcome, error_code from mailer.email_attempts')
    expect(history.rows).toEqual(ids.map(() => ({ outcome: 'released', error_code: null })))
    const attempts = await t.pool.query('select attempts from mailer.email_outbox')
    expect(attempts.rows.map((r) => r.attempts)).toEqual([0, 0, 0])
  })
})

describe('Graph refuses the cached token of a mailbox lookup and Entra is slow to refresh it', () => {
  const ROWS = 2

  test('a worker alone keeps the lookup for the refresh: looked up, then sent, no token_slow entry, one claim', async () => {
    const entra = boundedLatches(30_000).make('Entra’s answer to the refresh let go by the test')
    const refresh = entra.wait()
    // A test that failed before leaves the run-out to no one.
    refresh.catch(() => undefined)
    const solo = await revokedAlone(ROWS, refresh, { interrupted: true })
    await keptThenSent(entra)
    expect(await histories()).toEqual(
      Array.from({ length: ROWS }, () => ({ status: 'sent', attempts: 1, history: ['sent '] })),
    )
    expect(claimedBy(solo)).toBe(ROWS)
    expect(solo.fake.accepted).toHaveLength(ROWS)
    // One refresh, its token taken by every lookup and send again; each row looked up (Sent Items,
    // then the whole mailbox) once, before its send.
    expect(solo.fake.tokenRequests).toHaveLength(2)
    expect(solo.fake.requests.filter((r) => r.kind === 'lookup')).toHaveLength(2 * ROWS)
  })

  test('a stop while those lookups wait for the refresh releases their rows unsent and uncounted, at once, not at their deadline', async () => {
    const solo = await revokedAlone(ROWS, new Promise<void>(() => {}), { interrupted: true })
    // The grace longer than the lookups' 12 s deadline: the stop itself ends their wait.
    const stoppedFrom = monotonicNow(systemClock)
    await solo.engine.stop(30_000)
    expect(monotonicNow(systemClock) - stoppedFrom).toBeLessThan(10_000)
    // Released as a stop releases any unstarted row, the interrupted send's mark kept: no
    // lookup_failed or token_slow entry, nothing counted.
    expect(await histories()).toEqual(
      Array.from({ length: ROWS }, () => ({
        status: 'pending',
        attempts: 0,
        history: ['released '],
      })),
    )
    const marks = await t.pool.query(
      'select count(*)::int as n from mailer.email_outbox where send_started_at is not null',
    )
    expect(marks.rows[0].n).toBe(ROWS)
  })

  test('with another live worker the looked-up rows go back token_slow for it, not kept for the refresh', async () => {
    const { hung, working } = await givenBackToAPeer(ROWS, { interrupted: true })
    // Each row looked up (Sent Items, then the whole mailbox) by the other before its send.
    const lookedUp = (w: GraphWorker) => w.fake.requests.filter((r) => r.kind === 'lookup').length
    expect(lookedUp(working)).toBe(2 * ROWS)
    expect(lookedUp(hung)).toBe(0)
  })
})

test('another live worker refused on refresh while its cached token serves can take the rows (sql/0202), as the pacing turns’ give-up reads it; not once that use has passed', async () => {
  const other = (code: string | null, servesUntil: string | null) =>
    t.pool.query(
      `insert into mailer.workers (id, host, pid, version, lease_seconds, credential_refused_code,
                                   credential_refused_since, credential_serves_until)
       values ('other:2:abcdef', 'h', 2, 'v', 60, $1::text,
               case when $1::text is not null then now() end, now() + $2::interval)`,
      [code, servesUntil],
    )
  const ask = () => anotherWorkerLive(t.db, 'me:1:abcdef')
  expect(await ask()).toBe(false)
  await other('AADSTS7000222', '4 minutes')
  expect(await ask()).toBe(true)
  // Its token's use passed, in database time: refused, no token, it takes nothing.
  await t.pool.query(
    `update mailer.workers set credential_serves_until = now() - interval '1 second' where id = 'other:2:abcdef'`,
  )
  expect(await ask()).toBe(false)
  await t.pool.query(`update mailer.workers set credential_serves_until = null`)
  expect(await ask()).toBe(false)
  await t.pool.query(`delete from mailer.workers`)
  await other(null, null)
  expect(await ask()).toBe(true)
})

test('a peer whose beat stopped (killed, no clean stop: its entry left) takes no rows once its beat is overdue by its own lease, though its entry reads live for two; one whose LISTEN session holds its liveness lock does, its beat late', async () => {
  const other = 'other:2:abcdef'
  await t.pool.query(
    `insert into mailer.workers (id, host, pid, version, lease_seconds) values ($1, 'h', 2, 'v', 60)`,
    [other],
  )
  const beatAgo = (seconds: number) =>
    t.pool.query(
      `update mailer.workers set last_heartbeat_at = now() - make_interval(secs => $1) where id = $2`,
      [seconds, other],
    )
  const ask = () => anotherWorkerLive(t.db, 'me:1:abcdef')
  // Idle, a live worker beats once per lease length (its reclaim): within it, it takes them.
  await beatAgo(55)
  expect(await ask()).toBe(true)
  // A little late (its reclaim's own time, a pool's wait): within BEAT_LATE_SECONDS, still live.
  await beatAgo(60 + BEAT_LATE_SECONDS - 2)
  expect(await ask()).toBe(true)
  // Its beat overdue (a lease and more): killed, its entry still live for two leases (stale-probes'
  // rule), and a row given back for it would wait for nobody.
  await beatAgo(90)
  expect(await ask()).toBe(false)
  // Its LISTEN session holds its liveness lock (holder-lock.ts): alive, its beat only late (a
  // reclaim slow to answer).
  const session = await t.pool.connect()
  try {
    await session.query('select pg_advisory_lock(hashtextextended($1::text, 0))', [other])
    expect(await ask()).toBe(true)
    await session.query('select pg_advisory_unlock(hashtextextended($1::text, 0))', [other])
  } finally {
    session.release()
  }
  expect(await ask()).toBe(false)
  // An older binary's entry notes no lease: judged by the longest the configuration takes.
  await t.pool.query(`update mailer.workers set lease_seconds = null`)
  expect(await ask()).toBe(true)
})
