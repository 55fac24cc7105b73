// The statement route: an idle worker's statements ride its LISTEN session, so it holds one connection.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { systemClock } from '../../src/clock.ts'
import { pickupPathOf } from '../../src/database-engines.ts'
import { type DbHandle, openDb } from '../../src/db/open.ts'
import type { SharedSession } from '../../src/db/shared-session.ts'
import { silentLogger } from '../../src/log.ts'
import { LISTENER_APPLICATION_NAME } from '../../src/outbox/listen-session.ts'
import { createPgSendGate } from '../../src/outbox/pg-send-gate.ts'
import { pickupPrimer } from '../../src/outbox/pickup-primes.ts'
import { boundedLatches } from '../support/bounded-latches.ts'
import { useTestDb } from '../support/db.ts'
import { createTestEngine, enqueue, type TestEngine } from '../support/engine.ts'
import { pollUntil, settledFor } from '../support/events.ts'
import { createFakeSender, type FakeSender } from '../support/fake-sender.ts'
import { loneListener } from '../support/lone-listener.ts'
import { testPool } from '../support/test-pool.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
/** A turn a test holds on the shared session: the few statements it starts meanwhile take moments. */
const TURN_MS = 10_000
let h: DbHandle
let e: TestEngine | null = null
afterEach(async () => {
  await e?.stop()
  await h?.close()
  e = null
  await t.reset()
})

// Connections the pool opened, as counted when each send started.
let opened = 0
let openedAtSend: number[] = []

// The pool closes an idle connection after 30 ms, so tests do not wait 10 s for "idle".
async function startShared(graph = false): Promise<TestEngine> {
  h = openDb({
    name: 'test',
    url: t.url,
    log: silentLogger,
    idleTimeoutMs: 30,
    shareListenSession: true,
    applicationName: WORKER_POOL,
  })
  opened = 0
  openedAtSend = []
  h.pool.on('connect', () => {
    opened += 1
  })
  const fake = createFakeSender()
  const sender: FakeSender = {
    ...fake,
    send: (mail, signal) => {
      openedAtSend.push(opened)
      return fake.send(mail, signal)
    },
  }
  // No heartbeat while a test runs: a statement of the worker's own would take the session.
  // graph: sends through the Postgres send gate without pacing, as the Graph binary's, and the
  // session primed as database-engines primes it for them.
  const gate = graph
    ? createPgSendGate({
        db: h.statements.db,
        clock: systemClock,
        log: silentLogger,
        holder: 'test-worker',
        maxConcurrency: 4,
        ratePerMinute: 0,
        slotTtlMs: 60_000,
      })
    : undefined
  e = createTestEngine(t, {
    handle: h,
    deps: { sender, ...(gate && { gate }) },
    config: { leaseSeconds: 600, heartbeatSeconds: 300 },
    ...(graph && { prime: pickupPrimer(pickupPathOf(GRAPH_CONFIG)) }),
  })
  await e.start()
  await quiet()
  return e
}

// The worker's start-up statements are done: its reclaim and first claims, the listener's priming
// of the notified claim in its turn on the new session, and the sweep's claim that waits for that
// turn. Nothing is on the session or waits for it, and the pool is empty.
async function quiet() {
  // The listener has taken its priming turn by the time it says 'listening' (start() waited for
  // that): a turn of our own comes after it and after each statement that waited for it. Asked
  // during the priming, next() said 'session' and the test's statement went to the pool behind
  // the sweep's claim (the flake under load).
  await h.listenSession!.inTurn(async () => {})
  await pollUntil(
    async () => (h.pool.totalCount === 0 && h.statements.next() === 'session' ? true : undefined),
    5_000,
    5,
  )
}

// What pickupPathOf reads of a Graph worker's configuration: no pacing, the engine's MAIL_FROM.
const GRAPH_CONFIG = {
  transport: 'graph',
  mailFrom: 'sender@example.com',
  limits: { mailboxRatePerMinute: 0 },
} as const

const poolEmpty = () =>
  pollUntil(async () => (h.pool.totalCount === 0 ? true : undefined), 5_000, 5)
const pidOf = async (q: Promise<{ rows: { pid: number }[] }>) => (await q).rows[0]!.pid

const WORKER_POOL = 'outbox-mailer:shared-test'

// Client backends of the worker (its pool and its listener) on the test database.
async function workerConnections(): Promise<number> {
  const r = await t.pool.query<{ n: number }>(
    `select count(*)::int as n from pg_stat_activity
      where datname = current_database() and application_name in ($1, $2)`,
    [WORKER_POOL, LISTENER_APPLICATION_NAME],
  )
  return r.rows[0]!.n
}

// A closed connection's backend leaves pg_stat_activity a moment after the pool let it go.
const holdsOneConnection = () =>
  pollUntil(async () => ((await workerConnections()) === 1 ? true : undefined), 5_000, 10)

test('an idle worker holds one connection: its statements, and a row after a quiet spell, take the LISTEN session', async () => {
  const engine = await startShared()
  const first = await enqueue(t)
  await engine.events.waitFor(settledFor(first, 'sent'))
  await poolEmpty()
  await holdsOneConnection()
  expect(h.statements.next()).toBe('session')
  expect(await pidOf(h.statements.query('select pg_backend_pid() as pid'))).toBe(
    engine.listener.backendPid()!,
  )
  // A row after the quiet spell is claimed on the session: the pool opened nothing before its send.
  const before = opened
  const second = await enqueue(t)
  await engine.events.waitFor(settledFor(second, 'sent'))
  expect(openedAtSend.at(-1)).toBe(before)
  expect(engine.sender.calls.map((m) => m.outboxId)).toEqual([first, second])
})

test("a new session runs the notified claim before any row names one, claiming nothing: the first row's claim finds it prepared and planned", async () => {
  const engine = await startShared()
  // Prepared statements are the session's own: this statement runs on it (the route is quiet).
  const r = await h.statements.query<{ pid: number; names: string[] }>(
    'select pg_backend_pid() as pid, array(select name from pg_prepared_statements order by name) as names',
  )
  expect(r.rows[0]!.pid).toBe(engine.listener.backendPid()!)
  expect(r.rows[0]!.names).toContain('outbox_claim_notified')
  const { rows } = await t.pool.query<{ n: number }>(
    'select (select count(*) from mailer.email_outbox)::int + (select count(*) from mailer.email_attempts)::int as n',
  )
  expect(rows[0]!.n).toBe(0)
  // The first notified row is then claimed and sent as any other, on the session.
  const before = opened
  const id = await enqueue(t)
  await engine.events.waitFor(settledFor(id, 'sent'))
  expect(openedAtSend.at(-1)).toBe(before)
  expect(engine.sender.calls.map((m) => m.outboxId)).toEqual([id])
})

test("a new session of a Graph worker runs its send's statements for no row too: the first row's slot take and last check find them ready, and nothing was written", async () => {
  const engine = await startShared(true)
  // Prepared statements are the session's own: read on it, once the start's statements (the
  // reclaim, the sweep's claim) leave it free; on a loaded machine one may still be on it.
  const names = await pollUntil(async () => {
    const r = await h.statements.query<{ pid: number; names: string[] }>(
      'select pg_backend_pid() as pid, array(select name from pg_prepared_statements order by name) as names',
    )
    return r.rows[0]!.pid === engine.listener.backendPid() ? r.rows[0]!.names : undefined
  })
  expect(names).toContain('outbox_claim_notified_unowed')
  expect(names).toContain('outbox_start_sends_unpaused')
  // The slot take's prime took none and created none (a real take creates them at first use);
  // the worker's start noted its rate only (pacing-rate.ts).
  const { rows } = await t.pool.query<{ n: number }>(
    `select (select count(*) from mailer.email_outbox)::int + (select count(*) from mailer.email_attempts)::int
          + (select count(*) from mailer.send_slots)::int
          + (select count(*) from mailer.mailbox_pacing where mailbox <> 'pacing rate')::int as n`,
  )
  expect(rows[0]!.n).toBe(0)
  // The first row then takes a slot and its last check on the session, the prepared one included.
  const before = opened
  const id = await enqueue(t)
  await engine.events.waitFor(settledFor(id, 'sent'))
  expect(openedAtSend.at(-1)).toBe(before)
  expect(engine.sender.calls.map((m) => m.outboxId)).toEqual([id])
})

test("a Graph worker with MAIL_FROM claims its first row with the statement its session was primed with: the claim guarded by MAIL_FROM's pause (sql/0062)", async () => {
  const engine = await startShared(true)
  const claims = () =>
    pollUntil(async () => {
      const r = await h.statements.query<{ pid: number; names: string[] }>(
        `select pg_backend_pid() as pid,
                array(select name from pg_prepared_statements where name like 'outbox_claim%' order by name) as names`,
      )
      return r.rows[0]!.pid === engine.listener.backendPid() ? r.rows[0]!.names : undefined
    })
  const primed = await claims()
  const before = opened
  const id = await enqueue(t)
  await engine.events.waitFor(settledFor(id, 'sent'))
  // Claimed on the session (no connection opened for it): its claim is one the prime ran.
  expect(openedAtSend.at(-1)).toBe(before)
  expect(await claims()).toEqual(primed)
})

test('a statement while another is on the session takes the pool; the session takes the next one once free', async () => {
  const engine = await startShared()
  const listenerPid = engine.listener.backendPid()!
  const openedBefore = opened
  expect(h.statements.next()).toBe('session')
  const slow = pidOf(h.statements.query('select pg_backend_pid() as pid, pg_sleep(0.2)'))
  expect(h.statements.next()).toBe('pool')
  const meanwhile = await pidOf(h.statements.query('select pg_backend_pid() as pid'))
  expect(meanwhile).not.toBe(listenerPid)
  expect(opened).toBe(openedBefore + 1)
  expect(await slow).toBe(listenerPid)
  expect(h.statements.next()).toBe('session')
  expect(await pidOf(h.statements.query('select pg_backend_pid() as pid'))).toBe(listenerPid)
  // The pool's connection closes once idle: the worker is back to its one connection.
  await poolEmpty()
  await holdsOneConnection()
})

test("a statement on the free session is sent before query() returns: a pickup's claim goes out with no turn of the event loop first", async () => {
  // Every statement handed to pg by a client of this process, by its text: wrapped before the
  // worker's pool is opened, whose client class takes pg's query as it finds it then.
  const handed: string[] = []
  const plainQuery = pg.Client.prototype.query
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const q = args[0] as string | { text?: string }
    handed.push(typeof q === 'string' ? q : (q?.text ?? ''))
    return (plainQuery as (...a: unknown[]) => unknown).apply(this, args)
  } as unknown as pg.Client['query']
  try {
    const engine = await startShared()
    expect(h.statements.next()).toBe('session')
    const text = 'select pg_backend_pid() as pid /* sent at once */'
    const answer = pidOf(h.statements.query(text))
    expect(handed.filter((q) => q === text)).toEqual([text])
    expect(await answer).toBe(engine.listener.backendPid()!)
  } finally {
    pg.Client.prototype.query = plainQuery
  }
})

test("the listener's own statement waits for the route's on the session; a route statement waits for the listener's and takes the session after", async () => {
  const engine = await startShared()
  const at = async (q: Promise<{ rows: { t: number }[] }>) => (await q).rows[0]!.t
  // clock_timestamp() in the select list is read after pg_sleep in the from list has returned.
  const routeEnded = at(
    h.statements.query(
      'select extract(epoch from clock_timestamp())::float8 as t from pg_sleep(0.1)',
    ),
  )
  let turnStarted = 0
  await h.listenSession!.inTurn(async () => {
    turnStarted = await at(
      t.pool.query('select extract(epoch from clock_timestamp())::float8 as t'),
    )
  })
  expect(turnStarted).toBeGreaterThanOrEqual(await routeEnded)
  expect(h.statements.next()).toBe('session')

  // The listener's check and the backstop poll fall due together: the poll's claim must not open
  // a pool connection (nor go unheard on the session) because the check holds the session.
  await poolEmpty()
  const openedBefore = opened
  const turn = boundedLatches(TURN_MS).make('the check’s turn on the session ended')
  const owners = h.listenSession!.inTurn(() => turn.wait())
  expect(h.statements.next()).toBe('session')
  const meanwhile = pidOf(h.statements.query('select pg_backend_pid() as pid'))
  turn.resolve()
  await owners
  expect(await meanwhile).toBe(engine.listener.backendPid()!)
  expect(opened).toBe(openedBefore)
})

test("during the owner's turn one statement waits for the session: next() says the pool, which the next statement then takes", async () => {
  h = openDb({ name: 'test', url: t.url, log: silentLogger, shareListenSession: true })
  const client = h.listenSession!.newClient('statement-route-test')
  await client.connect()
  const turn = boundedLatches(TURN_MS).make('the owner’s turn on the session ended')
  try {
    h.listenSession!.attach(client)
    const sessionPid = await pidOf(client.query<{ pid: number }>('select pg_backend_pid() as pid'))
    const owners = h.listenSession!.inTurn(() => turn.wait())
    const first = pidOf(h.statements.query('select pg_backend_pid() as pid'))
    // The session is promised to `first` once the turn ends: a second statement gets the pool.
    expect(h.statements.next()).toBe('pool')
    const second = pidOf(h.statements.query('select pg_backend_pid() as pid'))
    turn.resolve()
    await owners
    expect(await first).toBe(sessionPid)
    expect(await second).not.toBe(sessionPid)
    expect(h.statements.next()).toBe('session')
  } finally {
    turn.resolve()
    await h.listenSession!.detach()
    await client.end()
  }
})

test('a transaction on the statement route is refused before anything runs', async () => {
  await startShared()
  const ran = h.statements.db
    .transaction()
    .execute(async (trx) => trx.selectFrom('mailer.workers').selectAll().execute())
  await expect(ran).rejects.toThrow(/run a transaction on the pool/)
})

test('a stop lets the statement on the session finish; a lost session fails it and the next one takes the pool', async () => {
  const engine = await startShared()
  await poolEmpty()
  const finishing = h.statements.query<{ ok: boolean }>('select true as ok from pg_sleep(0.2)')
  await engine.stop()
  expect((await finishing).rows[0]!.ok).toBe(true)
  expect(h.statements.next()).toBe('pool')
  e = null
  await h.close()

  const again = await startShared()
  await poolEmpty()
  const pid = again.listener.backendPid()!
  expect(h.statements.next()).toBe('session')
  const cut = h.statements.query('select pg_sleep(5)').then(
    () => null,
    (err: unknown) => err,
  )
  await t.pool.query('select pg_terminate_backend($1)', [pid])
  expect(await cut).toMatchObject({ code: '57P01' })
  // Gone from the route at once; back once the listener listens again on a new session.
  const back = await pollUntil(
    async () =>
      again.listener.state() === 'listening' && again.listener.backendPid() !== pid
        ? again.listener.backendPid()!
        : undefined,
    10_000,
    10,
  )
  // The reconnect's sweep claims on the new session too; poll past it.
  await pollUntil(async () => {
    await poolEmpty()
    return (await pidOf(h.statements.query('select pg_backend_pid() as pid'))) === back
      ? true
      : undefined
  })
})

test('without a shared session the pool keeps one connection open and every statement takes it', async () => {
  const plain = openDb({ name: 'plain', url: t.url, log: silentLogger, idleTimeoutMs: 30 })
  try {
    expect(plain.listenSession).toBeNull()
    const pid = await pidOf(plain.statements.query('select pg_backend_pid() as pid'))
    // Three idle timeouts later the one connection is still open and still taken.
    await idleTimeoutElapsed(90)
    expect(plain.pool.totalCount).toBe(1)
    expect(plain.statements.next()).toBe('pool')
    expect(await pidOf(plain.statements.query('select pg_backend_pid() as pid'))).toBe(pid)
    expect(plain.pool.totalCount).toBe(1)
  } finally {
    await plain.close()
  }
})

/**
 * Resolves once a connection released now has been closed for being idle `ms`: by then every idle
 * timer of `ms` or less that a pool set before this call has fired (timers fire in expiry order).
 */
async function idleTimeoutElapsed(ms: number) {
  const witness = testPool({ connectionString: t.url, max: 1, idleTimeoutMillis: ms })
  let closed = false
  witness.on('remove', () => {
    closed = true
  })
  try {
    await witness.query('select 1')
    await pollUntil(async () => (closed ? true : undefined), 10_000, 10)
  } finally {
    await witness.end()
  }
}

/** `shared`, counting the listener's checks (pg_listening_channels) sent on the sessions it opens. */
function countingChecks(shared: SharedSession) {
  let checks = 0
  const session: SharedSession = {
    ...shared,
    newClient(applicationName) {
      const client = shared.newClient(applicationName)
      const query = client.query.bind(client) as (...args: unknown[]) => unknown
      client.query = ((...args: unknown[]) => {
        if (typeof args[0] === 'string' && args[0].includes('pg_listening_channels')) checks += 1
        return query(...args)
      }) as typeof client.query
      return client
    },
  }
  return { session, checks: () => checks }
}

test('while statements answer on the shared session the listener sends no check of its own; once they stop it checks again', async () => {
  h = openDb({ name: 'test', url: t.url, log: silentLogger, shareListenSession: true })
  const counted = countingChecks(h.listenSession!)
  const { listener, listening } = loneListener(t.url, {
    checkIntervalMs: 50,
    shared: counted.session,
  })
  try {
    await listening()
    // One check when the session starts (is the LISTEN there, or behind a pooler?).
    const atStart = counted.checks()
    expect(atStart).toBe(1)
    const until = performance.now() + 20 * 50
    while (performance.now() < until) {
      expect(h.statements.next()).toBe('session')
      await h.statements.query('select 1')
    }
    expect(counted.checks()).toBe(atStart)
    await pollUntil(async () => (counted.checks() > atStart ? true : undefined), 5_000, 10)
    expect(listener.state()).toBe('listening')
  } finally {
    await listener.stop()
  }
})

/**
 * A listener on h's shared session, its checks counted. Its 15 s interval passes when the test
 * calls `sleeps[i]` (and `readings` say what time it is then); other waits (a check's bound) are real.
 */
function listenerOnSharedSession(readings: { now: () => number; monotonic?: () => number }) {
  const counted = countingChecks(h.listenSession!)
  const sleeps: (() => void)[] = []
  const clock = {
    ...readings,
    sleep: (ms: number, signal?: AbortSignal) =>
      ms !== 15_000
        ? systemClock.sleep(ms, signal)
        : new Promise<void>((resolve) => {
            sleeps.push(resolve)
            signal?.addEventListener('abort', () => resolve(), { once: true })
          }),
  }
  const { listener, listening } = loneListener(t.url, {
    clock,
    checkIntervalMs: 15_000,
    checkTimeoutMs: 5_000,
    shared: counted.session,
  })
  const nextSleep = async (n: number) =>
    pollUntil(async () => (sleeps.length >= n ? true : undefined), 5_000, 5)
  return { counted, sleeps, listening, listener, nextSleep }
}

test('a check that falls due while a statement of the route is on the session is not sent: that statement answers for the session', async () => {
  h = openDb({ name: 'test', url: t.url, log: silentLogger, shareListenSession: true })
  let now = 1_000_000
  const { counted, sleeps, listening, listener, nextSleep } = listenerOnSharedSession({
    now: () => now,
  })
  try {
    await listening()
    await nextSleep(1)
    const atStart = counted.checks()
    // The session has not answered for an interval, and a statement is on it when the check is due.
    const slow = h.statements.query('select pg_sleep(0.2)')
    now += 15_000
    sleeps[0]!()
    await slow
    await nextSleep(2)
    expect(counted.checks()).toBe(atStart)
    // Silent for an interval again: the check is sent.
    now += 15_000
    sleeps[1]!()
    await nextSleep(3)
    expect(counted.checks()).toBe(atStart + 1)
    expect(listener.state()).toBe('listening')
  } finally {
    await listener.stop()
  }
})

test('a wall clock stepped back after the session answered does not put off the next check', async () => {
  h = openDb({ name: 'test', url: t.url, log: silentLogger, shareListenSession: true })
  const c = { wall: 1_750_000_000_000, mono: 1_000 }
  const { counted, sleeps, listening, listener, nextSleep } = listenerOnSharedSession({
    now: () => c.wall,
    monotonic: () => c.mono,
  })
  try {
    await listening()
    await nextSleep(1)
    const atStart = counted.checks()
    expect(h.statements.next()).toBe('session')
    await h.statements.query('select 1')
    // An hour back on the wall clock, an interval on: the answer is an interval old, so a check.
    c.wall -= 3_600_000
    c.mono += 15_000
    sleeps[0]!()
    await nextSleep(2)
    expect(counted.checks()).toBe(atStart + 1)
    expect(listener.state()).toBe('listening')
  } finally {
    await listener.stop()
  }
})
