// Liveness, readiness (a fake, and a real probe through a database outage) and the metrics exposition.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { Kysely, PostgresDialect, sql } from 'kysely'
import pg from 'pg'
import { createMetrics, type Metrics } from '../../src/api/metrics.ts'
import { isReady } from '../../src/api/routes/health.ts'
import { type Clock, systemClock } from '../../src/clock.ts'
import { openDb } from '../../src/db/open.ts'
import type { Queryable } from '../../src/db/queryable.ts'
import type { Database } from '../../src/db/schema.ts'
import { silentLogger } from '../../src/log.ts'
import type { ListenerState } from '../../src/outbox/events.ts'
import type { DatabaseHealth, HealthSource } from '../../src/outbox/health.ts'
import { createHealthMonitor } from '../../src/outbox/health-monitor.ts'
import type { Listener } from '../../src/outbox/listener.ts'
import { liveStats } from '../../src/outbox/stats.ts'
import { createGraphTransport } from '../../src/transport/graph-transport.ts'
import { createTestDb, useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { generateTestCertificate, graphConfigFor, startFakeGraph } from '../support/fake-graph.ts'
import { fakeHealth } from './support/fake-health.ts'
import { appOnDefault, buildApp, enqueueSql, send, setState } from './support/harness.ts'
import { startTcpProxy } from './support/tcp-proxy.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
type Ready = { status: string; databases: (DatabaseHealth & { ready: boolean })[] }

/** The API over two databases, a and b (the test's database twice), judged by `health`. */
const appOnAAndB = (health: ReturnType<typeof fakeHealth>) =>
  buildApp(
    [
      { name: 'a', db: t.db, pool: t.pool },
      { name: 'b', db: t.db, pool: t.pool },
    ],
    { health },
  )

/** A probe's statements on the test's pool, each noted in `sent` by the database's name. */
const countedIn =
  (sent: string[]) =>
  (name: string): Queryable => ({
    query: (text, values) => {
      sent.push(name)
      return t.pool.query(text, values)
    },
  })

/** A listener that stays in `state`. */
const listenerIn = (state: ListenerState) =>
  ({
    state: () => state,
    start() {},
    stop: async () => {},
    backendPid: () => null,
    connectFailure: () => null,
  }) as Listener

describe('/healthz and /readyz', () => {
  test('need no token and flip with the health source', async () => {
    const health = fakeHealth(['default'])
    const { app } = appOnDefault(t, { health })
    expect((await send(app, 'GET', '/healthz')).status).toBe(200)
    expect((await send(app, 'GET', '/readyz')).status).toBe(200)

    health.live = { ok: false, problems: ['worker loop wedged'] }
    const dead = await send(app, 'GET', '/healthz')
    expect(dead.status).toBe(503)
    expect(dead.body).toEqual({ status: 'failing', problems: ['worker loop wedged'] })

    const db = health.states[0]!
    const notReady: [Partial<DatabaseHealth>, number][] = [
      [{ listener: 'reconnecting' }, 503],
      [{ listener: 'polling' }, 200],
      [{ worker: 'stopped' }, 503],
      [{ worker: 'starting' }, 503],
      [{ worker: 'disabled', listener: 'disabled' }, 200],
      [{ migrated: false, problem: 'schema version 0, binary needs 1' }, 503],
      [{ reachable: false, problem: 'connection refused' }, 503],
    ]
    for (const [change, status] of notReady) {
      health.states[0] = { ...db, ...change }
      const r = await send(app, 'GET', '/readyz')
      expect([change, r.status]).toEqual([change, status])
      if (status === 503) expect((r.body as Ready).databases[0]!.ready).toBe(false)
    }
  })

  test('a readiness probe that throws is 503 naming each database as unknown, not an empty list', async () => {
    const health = fakeHealth(['a', 'b'])
    health.readiness = async () => {
      throw new Error('probe exploded')
    }
    const { app } = appOnAAndB(health)
    const r = await send(app, 'GET', '/readyz')
    expect(r.status).toBe(503)
    expect((r.body as Ready).databases.map((d) => [d.name, d.ready, d.problem])).toEqual([
      ['a', false, 'the readiness probe failed'],
      ['b', false, 'the readiness probe failed'],
    ])
  })

  test('report each database when there are several', async () => {
    const health = fakeHealth(['a', 'b'])
    health.states[1]!.reachable = false
    health.states[1]!.problem = 'connection refused'
    const { app } = appOnAAndB(health)
    const r = await send(app, 'GET', '/readyz')
    expect(r.status).toBe(503)
    const body = r.body as Ready
    expect(body.databases.map((d) => [d.name, d.ready, d.problem])).toEqual([
      ['a', true, null],
      ['b', false, 'connection refused'],
    ])
  })

  test('liveness fails for a worker loop that stopped or stays silent past the bound; readiness for a stopped one', async () => {
    const now = 1_000_000
    const status = {
      running: true,
      lastLoopAt: now,
      loopSilentMs: 0,
      inFlight: 0,
      claimsFailing: null,
    }
    const health = createHealthMonitor({
      databases: [
        {
          name: 'shop',
          statements: t.pool,
          drainer: { status: () => status } as never,
          listener: null,
        },
        // --role api: no loop to watch.
        { name: 'api', statements: t.pool, drainer: null, listener: null },
      ],
      wedgedAfterMs: 120_000,
      monotonicNow: () => now,
    })
    const { app } = buildApp([{ name: 'shop', db: t.db, pool: t.pool }], { health })
    status.loopSilentMs = 120_000
    expect((await send(app, 'GET', '/healthz')).status).toBe(200)
    status.loopSilentMs = 121_000
    const wedged = await send(app, 'GET', '/healthz')
    expect([wedged.status, wedged.body]).toEqual([
      503,
      { status: 'failing', problems: ['shop: worker loop silent for 121s'] },
    ])
    status.lastLoopAt = now
    status.running = false
    expect(health.liveness()).toEqual({ ok: false, problems: ['shop: worker loop stopped'] })
    // A stopped loop is not ready either.
    const ready = await send(app, 'GET', '/readyz')
    expect(ready.status).toBe(503)
    expect((ready.body as Ready).databases[0]).toMatchObject({ worker: 'stopped', ready: false })
  })

  test('a failing probe is not ready', async () => {
    const health: HealthSource = {
      readiness: () => Promise.reject(new Error('boom')),
      listenerStates: () => [],
      liveness: () => ({ ok: true, problems: [] }),
    }
    const { app } = appOnDefault(t, { health })
    expect((await send(app, 'GET', '/readyz')).status).toBe(503)
  })

  test('tell the truth through a real database outage, one statement per probe', async () => {
    const target = new URL(t.url)
    const proxy = await startTcpProxy(target.hostname, Number(target.port))
    const viaProxy = new URL(t.url)
    viaProxy.hostname = '127.0.0.1'
    viaProxy.port = String(proxy.port)
    // Bounds a loaded machine's connect (SCRAM on both sides) and first statement keep within: 2 s
    // each failed the first probe in CI (503). The outage below is refused, not silent: no wait.
    const pool = new pg.Pool({
      connectionString: viaProxy.toString(),
      connectionTimeoutMillis: 10_000,
      max: 2,
    })
    pool.on('error', () => {})
    // Every statement the probes send, as the pool sees it.
    const sent: string[] = []
    const query = pool.query.bind(pool) as (text: string) => Promise<unknown>
    pool.query = ((text: string) => {
      sent.push(text)
      return query(text)
    }) as unknown as typeof pool.query
    let now = 1_000_000
    const health = createHealthMonitor({
      databases: [{ name: 'default', statements: pool, drainer: null, listener: null }],
      wedgedAfterMs: 60_000,
      monotonicNow: () => now,
      probeTimeoutMs: 10_000,
    })
    const readsSchema = (q: string | undefined) => q?.includes('mailer.schema_migrations') ?? false
    try {
      const { app } = appOnDefault(t, { health })
      expect((await send(app, 'GET', '/readyz')).status).toBe(200)
      expect(sent.length).toBe(1)
      expect(readsSchema(sent[0])).toBe(true)
      // Fly probes every 15 s: the schema is read again only after five minutes.
      now += 15_000
      expect((await send(app, 'GET', '/readyz')).status).toBe(200)
      expect(sent.length).toBe(2)
      expect(readsSchema(sent[1])).toBe(false)

      proxy.down()
      const down = await send(app, 'GET', '/readyz')
      expect(down.status).toBe(503)
      expect((down.body as Ready).databases[0]).toMatchObject({
        reachable: false,
        problem: expect.stringMatching(/^database unreachable \(/),
      })
      proxy.up()
      // Back after an outage: the schema is read again (the database may have been restored).
      expect((await send(app, 'GET', '/readyz')).status).toBe(200)
      expect(readsSchema(sent.at(-1))).toBe(true)
      now += 5 * 60_000
      expect((await send(app, 'GET', '/readyz')).status).toBe(200)
      expect(readsSchema(sent.at(-1))).toBe(true)
      expect(sent.length).toBe(5)
    } finally {
      await pool.end()
      await proxy.close()
    }
  })

  test('a probe within 5 s of an answer to the worker’s statements sends none; an outage is reported 5 s after the last answer at most, at once after a failed statement', async () => {
    const target = new URL(t.url)
    const proxy = await startTcpProxy(target.hostname, Number(target.port))
    const viaProxy = new URL(t.url)
    viaProxy.hostname = '127.0.0.1'
    viaProxy.port = String(proxy.port)
    let now = 1_000_000
    const handle = openDb({
      name: 'default',
      url: viaProxy.toString(),
      log: silentLogger,
      monotonicNow: () => now,
    })
    // Every statement the probes send, through the worker's statement route.
    const sent: string[] = []
    const statements: Queryable = {
      query: (text, values) => {
        sent.push(text)
        return handle.statements.query(text, values)
      },
    }
    const health = createHealthMonitor({
      databases: [
        {
          name: 'default',
          statements,
          answeredAt: () => handle.statements.answeredAt(),
          drainer: null,
          listener: null,
        },
      ],
      schemaCurrent: ['default'],
      wedgedAfterMs: 60_000,
      monotonicNow: () => now,
    })
    const { app } = appOnDefault(t, { health })
    const readyz = async () => (await send(app, 'GET', '/readyz')).status
    try {
      // Nothing has answered yet: the probe asks.
      expect(await readyz()).toBe(200)
      expect(sent.length).toBe(1)
      // Its answer stands for the probes of the next 5 s.
      now += 4_999
      expect(await readyz()).toBe(200)
      expect(sent.length).toBe(1)
      now += 1
      expect(await readyz()).toBe(200)
      expect(sent.length).toBe(2)
      // A wall clock set back makes no old answer look recent.
      now -= 60_000
      expect(await readyz()).toBe(200)
      expect(sent.length).toBe(3)
      now += 60_000
      // Any statement of the route counts: a poll's claim, a scrape's read.
      now += 10_000
      await handle.statements.query('select 2')
      now += 3_000
      expect(await readyz()).toBe(200)
      expect(sent.length).toBe(3)
      // An outage nothing has run into yet: still ready until 5 s after the last answer, not after.
      proxy.down()
      now += 1_999
      expect(await readyz()).toBe(200)
      now += 1
      const down = await send(app, 'GET', '/readyz')
      expect(down.status).toBe(503)
      expect((down.body as Ready).databases[0]).toMatchObject({
        reachable: false,
        problem: expect.stringMatching(/^database unreachable \(/),
      })
      proxy.up()
      expect(await readyz()).toBe(200)
      // A statement of the route that fails (here: the worker's) leaves nothing to stand for the probe.
      proxy.down()
      await expect(handle.statements.query('select 3')).rejects.toThrow()
      expect(await readyz()).toBe(503)
    } finally {
      await handle.close()
      await proxy.close()
    }
  })

  test('with several databases, a recent answer stands for a probe only where the session holds or makes its first connect; a reconnecting listener’s database is asked, reachable, and not ready', async () => {
    const sent: string[] = []
    const counted = countedIn(sent)
    const now = 1_000_000
    const names = ['listening', 'polling', 'reconnecting', 'connecting', 'stopped'] as const
    const health = createHealthMonitor({
      databases: names.map((state) => ({
        name: state,
        statements: counted(state),
        // Every database answered a statement of the worker's a second ago.
        answeredAt: () => now - 1_000,
        drainer: null,
        listener: listenerIn(state),
      })),
      schemaCurrent: [...names],
      wedgedAfterMs: 60_000,
      monotonicNow: () => now,
    })
    // The first probe of each asks once whether the session takes writes, which no answer says.
    await health.readiness()
    expect(sent.sort()).toEqual([...names].sort())
    sent.length = 0
    const states = await health.readiness()
    // A session lost may have gone with the database; one connecting for the first time (a start)
    // has lost nothing: a start's probes are 503 until it listens, with no statement behind the
    // pool connection's prime.
    expect(sent.sort()).toEqual(['reconnecting', 'stopped'])
    expect(states.map((h) => [h.name, h.reachable, h.problem, isReady(h)])).toEqual([
      ['listening', true, null, true],
      ['polling', true, null, true],
      ['reconnecting', true, 'listener is reconnecting', false],
      ['connecting', true, 'listener is connecting', false],
      ['stopped', true, 'listener is stopped', false],
    ])
  })

  test('a database serve’s start found taking writes, its answer recent, is ready at the first probe with no statement of its own; one found refusing them, or not said, is asked', async () => {
    // serve's schema read at start asks whether the session refuses writes in the same statement
    // and notes its answer on the route: the first /readyz once the session listens waited
    // behind the session's prime (a Graph worker's cold claim, slot take and last check) for a
    // statement that would only say the same.
    const sent: string[] = []
    const counted = countedIn(sent)
    let now = 1_000_000
    const listening = listenerIn('listening')
    const names = ['taking', 'unsaid'] as const
    const health = createHealthMonitor({
      databases: names.map((name) => ({
        name,
        statements: counted(name),
        // The start's schema read answered a second ago.
        answeredAt: () => 1_000_000 - 1_000,
        drainer: null,
        listener: listening,
      })),
      schemaCurrent: [...names],
      takingWrites: ['taking'],
      wedgedAfterMs: 60_000,
      monotonicNow: () => now,
    })
    const first = await health.readiness()
    expect({ sent, ready: first.map((h) => [h.name, isReady(h)]) }).toEqual({
      sent: ['unsaid'],
      ready: [
        ['taking', true],
        ['unsaid', true],
      ],
    })
    // The start's answer ages out as a probe's would: 5 s after it.
    now += 3_999
    sent.length = 0
    await health.readiness()
    expect(sent).toEqual([])
    now += 1
    await health.readiness()
    expect(sent.sort()).toEqual(['taking', 'unsaid'])
  })

  // A certificate made by openssl and the app's document built for send()'s check: up to 24 s of the
  // file's 30 in CI (round 46), 18 s here beside a busy loop.
  test('a credential Entra refuses at a proactive refresh (refresh_in) leaves readiness 200 with a warning while the cached token serves sends; 503 once it serves none', async () => {
    let now = Date.now()
    const clock: Clock = { now: () => now, sleep: async () => {} }
    const cert = await generateTestCertificate()
    // Tokens of 3599 s, refreshed from 1800 s on, handed out until 3299 s (5 minutes before expiry).
    const fake = await startFakeGraph({
      certificates: [cert.certPem],
      now: clock.now,
      refreshInSeconds: 1800,
    })
    let metrics: Metrics | null = null
    const transport = createGraphTransport(
      graphConfigFor(fake, { certificate: cert.certPem, privateKey: cert.keyPem }),
      'noreply@contoso.com',
      {
        fetch,
        clock,
        log: silentLogger,
        onTokenRefresh: (outcome, code) => metrics?.incTokenRefresh(outcome, code),
      },
    )
    const status = { running: true, lastLoopAt: now, inFlight: 0, claimsFailing: null }
    const health = createHealthMonitor({
      databases: [
        {
          name: 'default',
          statements: t.pool,
          drainer: { status: () => status } as never,
          listener: null,
        },
      ],
      schemaCurrent: ['default'],
      wedgedAfterMs: 120_000,
      transportProblem: transport.problem,
      transportWarning: transport.warning,
      monotonicNow: clock.now,
    })
    const built = appOnDefault(t, { health })
    metrics = built.deps.metrics
    const readyz = async () => {
      const r = await send(built.app, 'GET', '/readyz')
      status.lastLoopAt = now
      return { status: r.status, db: (r.body as Ready).databases[0] }
    }
    const refusal =
      'graph token refused: AADSTS700027: the certificate is not registered on the app: upload GRAPH_CERTIFICATE to the app registration (fix the app registration or credential)'
    try {
      await transport.tokens.getToken()
      const fresh = await readyz()
      expect(fresh.status).toBe(200)
      expect(fresh.db?.problem).toBeNull()
      // The credential is revoked in Entra: the proactive refresh a send starts is refused.
      const refused = { status: 401, error: 'invalid_client', aadsts: 700027 }
      fake.setFaults({ token: Array.from({ length: 10 }, () => refused) })
      now += 1801_000
      await transport.tokens.getToken()
      await pollUntil(async () => transport.tokens.lastError() ?? undefined)
      expect(transport.blockedForMs()).toBe(0)
      // Mail still flows with the cached token: ready, the refusal shown as a warning and counted.
      const serving = await readyz()
      expect(serving.status).toBe(200)
      expect(serving.db).toMatchObject({ ready: true, problem: null })
      expect(serving.db?.warning).toStartWith(`${refusal}; `)
      expect((await send(built.app, 'GET', '/metrics')).body as string).toContain(
        'outbox_token_failures_total{code="AADSTS700027"} 1',
      )
      // Past the cached token's use no row can go: claims stop, and readiness says why.
      now += 3300_000 - 1801_000
      expect(await readyz()).toMatchObject({
        status: 503,
        db: { ready: false, problem: refusal, warning: null },
      })
      // Past the refusal's cooldown that probe asked Entra again, refused again: claims stop.
      await pollUntil(async () => (transport.blockedForMs() > 0 ? true : undefined))
    } finally {
      await fake.stop()
    }
  }, 90_000)

  test('a schema serve found current at its start is not read again by the first probes', async () => {
    const sent: string[] = []
    const statements: Queryable = {
      query: (text, values) => {
        sent.push(text)
        return t.pool.query(text, values)
      },
    }
    let now = 1_000_000
    const health = createHealthMonitor({
      databases: [
        { name: 'checked', statements, drainer: null, listener: null },
        { name: 'unchecked', statements, drainer: null, listener: null },
      ],
      schemaCurrent: ['checked'],
      wedgedAfterMs: 60_000,
      monotonicNow: () => now,
    })
    const readsSchema = (q: string) => q.includes('mailer.schema_migrations')
    expect((await health.readiness()).map((d) => d.migrated)).toEqual([true, true])
    // One `select 1` for the database serve checked, one schema read for the one it could not.
    expect(sent.map(readsSchema).sort()).toEqual([false, true])
    sent.length = 0
    now += 5 * 60_000
    await health.readiness()
    expect(sent.map(readsSchema)).toEqual([true, true])
  })

  test('a database without the schema is reachable and says how to fix it', async () => {
    const bare = await createTestDb()
    try {
      await bare.pool.query('drop schema mailer cascade')
      const health = createHealthMonitor({
        databases: [{ name: 'bare', statements: bare.pool, drainer: null, listener: null }],
        wedgedAfterMs: 60_000,
      })
      const [state] = await health.readiness()
      expect(state).toMatchObject({ reachable: true, migrated: false })
      expect(state?.problem).toContain('run `outbox-mailer migrate` first')
    } finally {
      await bare.drop()
    }
  })
  test('a newer release’s migration keeps this one ready only if it declared older binaries compatible', async () => {
    const ahead = await createTestDb()
    let now = 1_000_000
    try {
      const health = createHealthMonitor({
        databases: [{ name: 'ahead', statements: ahead.pool, drainer: null, listener: null }],
        wedgedAfterMs: 60_000,
        monotonicNow: () => now,
      })
      // What a newer binary's migrate records for a file with `--! older-binaries-compatible`.
      await ahead.pool.query(
        `insert into mailer.schema_migrations (version, name, checksum, older_binaries_compatible)
         values (9000, '9000_new_index', 'x', true)`,
      )
      expect((await health.readiness())[0]).toMatchObject({ migrated: true, problem: null })
      await ahead.pool.query(
        `insert into mailer.schema_migrations (version, name, checksum) values (9001, '9001_new_column', 'y')`,
      )
      now += 5 * 60_000
      const [state] = await health.readiness()
      expect(state).toMatchObject({ reachable: true, migrated: false })
      expect(state?.problem).toContain('migration 9001 (9001_new_column)')
    } finally {
      await ahead.drop()
    }
  })
})

describe('/metrics', () => {
  test('exposes engine counters, table state per database and listener state', async () => {
    await t.reset()
    const health = fakeHealth(['default'])
    const metrics = createMetrics({
      databases: [{ name: 'default', db: t.db, statements: t.statements }],
      health,
    })
    const { app } = appOnDefault(t, { health, metrics })
    const a = await enqueueSql(t.pool)
    const b = await enqueueSql(t.pool)
    await setState(t.pool, b, 'failed')
    await t.pool.query(
      `update mailer.email_outbox set send_at = now() - interval '30 seconds' where id = $1`,
      [a],
    )
    metrics.observe({ type: 'settled', db: 'default', id: '1', outcome: 'sent', durationMs: 120 })
    metrics.observe({
      type: 'settled',
      db: 'default',
      id: '2',
      outcome: 'throttled',
      durationMs: 80,
    })
    // Sent back from a paused mailbox: a row that waits, not one more answer from Graph.
    metrics.observe({
      type: 'settled',
      db: 'default',
      id: '3',
      outcome: 'throttled',
      code: 'mailbox_paused',
    })
    // Sent back to a reserved pacing turn: no answer from Graph either.
    metrics.observe({
      type: 'settled',
      db: 'default',
      id: '4',
      outcome: 'throttled',
      code: 'mailbox_paced',
    })
    metrics.observe({ type: 'reclaimed', db: 'default', count: 2 })
    metrics.incTokenRefresh()
    // An Entra outage shows by its code, whether or not any row is due.
    metrics.incTokenRefresh('failure', 'token_timeout')
    metrics.incTokenRefresh('failure', 'token_timeout')
    metrics.incTokenRefresh('failure', 'AADSTS50000')

    const r = await send(app, 'GET', '/metrics')
    expect(r.status).toBe(200)
    const text = r.body as string
    expect(text).toContain('outbox_sends_total{db="default",outcome="sent"} 1')
    expect(text).toContain('outbox_sends_total{db="default",outcome="throttled"} 3')
    // Graph's answer named none (no httpStatus on the event): another wait than a 429 or 503.
    expect(text).toContain(
      'outbox_graph_throttled_total{db="default",cause="other",service="graph"} 1',
    )
    expect(text).toContain('outbox_send_duration_seconds_count{db="default"} 2')
    expect(text).toContain('outbox_leases_reclaimed_total{db="default"} 2')
    expect(text).toContain('outbox_token_refreshes_total{outcome="success"} 1')
    expect(text).toContain('outbox_token_refreshes_total{outcome="failure"} 3')
    expect(text).toContain('outbox_token_failures_total{code="token_timeout"} 2')
    expect(text).toContain('outbox_token_failures_total{code="AADSTS50000"} 1')
    expect(text).toContain('outbox_rows{db="default",status="pending"} 1')
    expect(text).toContain('outbox_rows{db="default",status="failed"} 1')
    expect(text).toContain('outbox_rows{db="default",status="sent"} 0')
    expect(text).toContain('outbox_listener_connected{db="default"} 1')
    expect(text).toContain('outbox_notification_queue_usage{db="default"} 0')
    expect(text).toContain('outbox_database_up{db="default"} 1')
    const age = Number(/outbox_oldest_pending_age_seconds\{db="default"\} ([\d.]+)/.exec(text)?.[1])
    expect(age).toBeGreaterThanOrEqual(30)

    health.states[0]!.listener = 'reconnecting'
    expect((await send(app, 'GET', '/metrics')).body as string).toContain(
      'outbox_listener_connected{db="default"} 0',
    )
  })

  test('a wall clock stepped forward during a scrape leaves the count of finished rows its wait', async () => {
    await t.reset()
    // The wall clock jumps an hour once the scrape has begun: on it, the scrape's 2 s were spent
    // before the count of finished rows began, and the first scrape went without them.
    let step = 0
    const clock: Clock = {
      now: () => {
        const at = Date.now() + step
        step = 3_600_000
        return at
      },
      monotonic: () => performance.now(),
      sleep: systemClock.sleep,
    }
    const health = fakeHealth(['default'])
    const metrics = createMetrics({
      databases: [{ name: 'default', db: t.db, statements: t.statements }],
      health,
      clock,
    })
    const { app } = appOnDefault(t, { health, metrics })
    expect((await send(app, 'GET', '/metrics')).body as string).toContain(
      'outbox_rows{db="default",status="sent"} 0',
    )
  })

  test('outbox_sender_mailbox_refused says whether Graph refuses MAIL_FROM now, and is absent without a Graph worker', async () => {
    await t.reset()
    let refused = true
    const withGraph = { senderMailboxRefused: () => refused }
    expect(await scrapeWith(withGraph)).toContain(
      '\noutbox_sender_mailbox_refused{mailbox="MAIL_FROM"} 1\n',
    )
    refused = false
    expect(await scrapeWith(withGraph)).toContain(
      '\noutbox_sender_mailbox_refused{mailbox="MAIL_FROM"} 0\n',
    )
    expect(await scrapeWith({})).not.toContain('\noutbox_sender_mailbox_refused{')
  })

  test('outbox_graph_credential_refused says whether Entra refuses the credential now, by kind, and is absent without a Graph worker', async () => {
    await t.reset()
    let refused = true
    const withGraph = { credential: { kind: 'secret' as const, refused: () => refused } }
    expect(await scrapeWith(withGraph)).toContain(
      '\noutbox_graph_credential_refused{credential="secret"} 1\n',
    )
    refused = false
    expect(await scrapeWith(withGraph)).toContain(
      '\noutbox_graph_credential_refused{credential="secret"} 0\n',
    )
    expect(await scrapeWith({})).not.toContain('\noutbox_graph_credential_refused{')
  })

  test('with a Graph worker, outbox_token_refreshes_total is exported at 0 by outcome before the first token request (the "Token failures" alert sees the first); without one, absent', async () => {
    await t.reset()
    const withGraph = { credential: { kind: 'secret' as const, refused: () => false } }
    const body = await scrapeWith(withGraph)
    expect(body).toContain('\noutbox_token_refreshes_total{outcome="success"} 0\n')
    expect(body).toContain('\noutbox_token_refreshes_total{outcome="failure"} 0\n')
    expect(await scrapeWith({})).not.toContain('\noutbox_token_refreshes_total{')
  })

  test('outbox_graph_outage says whether Graph is out of reach or refuses every token now, by cause, and is absent without a Graph worker', async () => {
    await t.reset()
    let outage: 'unreachable' | 'unauthorized' | null = 'unreachable'
    const withGraph = { providerOutage: () => outage }
    const body = await scrapeWith(withGraph)
    expect(body).toContain('\noutbox_graph_outage{cause="unreachable"} 1\n')
    expect(body).toContain('\noutbox_graph_outage{cause="unauthorized"} 0\n')
    outage = 'unauthorized'
    expect(await scrapeWith(withGraph)).toContain('\noutbox_graph_outage{cause="unauthorized"} 1\n')
    outage = null
    const after = await scrapeWith(withGraph)
    expect(after).toContain('\noutbox_graph_outage{cause="unreachable"} 0\n')
    expect(after).toContain('\noutbox_graph_outage{cause="unauthorized"} 0\n')
    expect(await scrapeWith({})).not.toContain('\noutbox_graph_outage{')
  })

  test('outbox_listener_connected is absent where no LISTEN is wanted (--role api, LISTEN_MODE=poll)', async () => {
    const series = 'outbox_listener_connected{db="default"}'
    const scrape = async (
      mode: 'auto' | 'poll' | undefined,
      listener: DatabaseHealth['listener'],
    ) => {
      const health = fakeHealth(['default'])
      health.states[0]!.listener = listener
      const metrics = createMetrics({
        databases: [{ name: 'default', db: t.db, statements: t.statements }],
        health,
        ...(mode ? { listenMode: mode } : {}),
      })
      return { metrics, health, text: await metrics.render() }
    }
    // --role api: no listener at all.
    expect((await scrape(undefined, 'disabled')).text).not.toContain(series)
    // LISTEN_MODE=poll: polling is the configured state, and stopping does not report it down.
    const poll = await scrape('poll', 'polling')
    expect(poll.text).not.toContain(series)
    poll.metrics.observe({ type: 'listener', db: 'default', state: 'stopped' })
    expect(await poll.metrics.registry.metrics()).not.toContain(series)
    // The fallback from a LISTEN that failed (a transaction pooler) is still worth an alert.
    const fallback = await scrape('auto', 'polling')
    expect(fallback.text).toContain(`${series} 0`)
    expect((await scrape(undefined, 'polling')).text).toContain(`${series} 0`)
    // A series once exported goes away when its listener does not exist any more.
    fallback.health.states[0]!.listener = 'disabled'
    expect(await fallback.metrics.render()).not.toContain(series)
  })

  test('a scrape reads rows in play only; finished rows are recounted once per interval', async () => {
    await t.reset()
    // The table keeps every finished row: counting them at each scrape would read all of it.
    await t.pool.query(
      `insert into mailer.email_outbox (message, status, attempts, sent_at)
       select jsonb_build_object('to', 'a@example.com', 'subject', 's', 'text', 't'), 'sent', 1, now()
         from generate_series(1, 20000)`,
    )
    await t.pool.query('analyze mailer.email_outbox')
    let now = 1_000_000
    const metrics = createMetrics({
      databases: [{ name: 'default', db: t.db, statements: t.statements }],
      health: fakeHealth(['default']),
      clock: { now: () => now, sleep: systemClock.sleep },
      settledRefreshMs: 60_000,
    })
    expect(await metrics.render()).toContain('outbox_rows{db="default",status="sent"} 20000')

    const failing = await enqueueSql(t.pool)
    await setState(t.pool, failing, 'failed')
    await enqueueSql(t.pool)
    now += 59_000
    const within = await metrics.render()
    expect(within).toContain('outbox_rows{db="default",status="pending"} 1')
    expect(within).toContain('outbox_rows{db="default",status="failed"} 0')
    now += 1_000
    expect(await metrics.render()).toContain('outbox_rows{db="default",status="failed"} 1')

    // The per-scrape statement uses the partial indexes, never a scan of the table. Counted by the
    // backend's own statistics, not yet flushed (so taken before and after, in one transaction).
    const { live, seq, idx } = await t.db.transaction().execute(async (trx) => {
      const scans = async () =>
        (
          await sql<{ seq: string; idx: string }>`
            select seq_scan as seq, idx_scan as idx from pg_stat_xact_user_tables
             where relid = 'mailer.email_outbox'::regclass`.execute(trx)
        ).rows[0]!
      const before = await scans()
      const live = await liveStats(trx, null)
      const after = await scans()
      return {
        live,
        seq: Number(after.seq) - Number(before.seq),
        idx: Number(after.idx) - Number(before.idx),
      }
    })
    expect(live).toMatchObject({ pending: 1, sending: 0 })
    expect(seq).toBe(0)
    // Pending, sending, the oldest due, and the rows past their expiresAt (sql/0022's index).
    expect(idx).toBe(4)
  })

  test('a scrape sends one statement; a slow one is waited for within the bound, and not sent twice', async () => {
    await t.reset()
    await enqueueSql(t.pool)
    const done: string[] = []
    // The harness's pool under a Kysely that logs every statement it completes (never destroyed:
    // that would end the shared pool).
    const logged = new Kysely<Database>({
      dialect: new PostgresDialect({ pool: t.pool }),
      log: (e) => {
        done.push(e.query.sql)
      },
    })
    const metrics = createMetrics({
      databases: [{ name: 'default', db: logged, statements: { db: logged } }],
      health: fakeHealth(['default']),
      scrapeTimeoutMs: 2_000,
      settledRefreshMs: 60 * 60_000,
    })
    // The finished rows' count runs on past a scrape whose bound it outlasts (a loaded machine's):
    // the scrape that finds it in is the first whose statements are its own.
    await pollUntil(async () =>
      (await metrics.render()).includes('outbox_rows{db="default",status="sent"} 0')
        ? true
        : undefined,
    )
    expect(await metrics.render()).toContain('outbox_rows{db="default",status="pending"} 1')
    done.length = 0
    expect(await metrics.render()).toContain('outbox_database_up{db="default"} 1')
    expect(done.length).toBe(1)

    const waiting = async () =>
      Number(
        (
          await t.pool.query(
            `select count(*) as n from pg_stat_activity
              where datname = current_database() and wait_event_type = 'Lock'
                and query like '%pg_notification_queue_usage%'`,
          )
        ).rows[0].n,
      )
    const locker = await t.pool.connect()
    try {
      await locker.query('begin')
      await locker.query('lock table mailer.email_outbox in access exclusive mode')
      const text = await metrics.render()
      expect(text).toContain('outbox_database_up{db="default"} 0')
      expect(text).not.toContain('outbox_rows{db="default",status="pending"}')
      expect(await metrics.render()).toContain('outbox_database_up{db="default"} 0')
      expect(await waiting()).toBe(1)
    } finally {
      await locker.query('commit')
      locker.release()
    }
    let text = ''
    for (let i = 0; i < 50 && !text.includes('outbox_database_up{db="default"} 1'); i++) {
      text = await metrics.render()
    }
    expect(text).toContain('outbox_rows{db="default",status="pending"} 1')
  })

  test('idle, a scrape reuses an empty outbox’s live numbers for at most a minute, and until any engine event', async () => {
    await t.reset()
    const done: string[] = []
    // The harness's pool under a Kysely that logs every statement it completes (never destroyed).
    const logged = new Kysely<Database>({
      dialect: new PostgresDialect({ pool: t.pool }),
      log: (e) => {
        done.push(e.query.sql)
      },
    })
    let now = 1_000_000
    const health = fakeHealth(['default'])
    const metrics = createMetrics({
      databases: [{ name: 'default', db: logged, statements: { db: logged } }],
      health,
      settledRefreshMs: 60 * 60_000,
      quietReuseMs: 60_000,
      clock: { now: () => now, sleep: systemClock.sleep },
    })
    const scrape = async () => {
      const before = done.length
      const text = await metrics.render()
      return { text, statements: done.length - before }
    }
    const pending = (n: number) => `outbox_rows{db="default",status="pending"} ${n}`
    expect((await scrape()).text).toContain(pending(0))
    // Fly's scrape every 15 s: no statement until a minute after the read.
    for (let i = 0; i < 3; i++) {
      now += 15_000
      const s = await scrape()
      expect(s.statements).toBe(0)
      expect(s.text).toContain(pending(0))
      expect(s.text).toContain('outbox_database_up{db="default"} 1')
    }
    now += 15_000
    expect((await scrape()).statements).toBe(1)
    // A wall clock set back makes no old read look recent.
    now -= 60_000
    expect((await scrape()).statements).toBe(1)
    now += 60_000
    // An insert notifies; the listener's event makes the next scrape read, and it sees the row.
    const id = await enqueueSql(t.pool)
    metrics.observe({ type: 'notification', db: 'default' })
    now += 15_000
    const after = await scrape()
    expect(after.statements).toBe(1)
    expect(after.text).toContain(pending(1))
    // A row in play: every scrape reads.
    now += 15_000
    expect((await scrape()).statements).toBe(1)
    // Gone again (sent by another worker): the read that finds it empty stands for the next scrape.
    await setState(t.pool, id, 'sent')
    now += 15_000
    expect((await scrape()).text).toContain(pending(0))
    now += 15_000
    expect((await scrape()).statements).toBe(0)
    // Any engine event, not only a notification: a claim here, a reclaim, a settlement.
    metrics.observe({ type: 'claimed', db: 'default', count: 1 })
    now += 15_000
    expect((await scrape()).statements).toBe(1)
    // A listener not listening hears no insert: read at every scrape, and such a read stands for none.
    health.states[0]!.listener = 'reconnecting'
    now += 15_000
    expect((await scrape()).statements).toBe(1)
    health.states[0]!.listener = 'listening'
    now += 15_000
    expect((await scrape()).statements).toBe(1)
    now += 15_000
    expect((await scrape()).statements).toBe(0)
  })

  test('finished-row counts that failed in an outage come back with the database, not an interval later', async () => {
    const target = new URL(t.url)
    const proxy = await startTcpProxy(target.hostname, Number(target.port))
    const viaProxy = new URL(t.url)
    viaProxy.hostname = '127.0.0.1'
    viaProxy.port = String(proxy.port)
    const handle = openDb({ name: 'default', url: viaProxy.toString(), log: silentLogger })
    let now = 1_000_000
    const metrics = createMetrics({
      databases: [{ name: 'default', db: handle.db, statements: handle.statements }],
      health: fakeHealth(['default']),
      settledRefreshMs: 5 * 60_000,
      clock: { now: () => now, sleep: systemClock.sleep },
    })
    const failed = 'outbox_rows{db="default",status="failed"}'
    // Bounded: a scrape waits for a count at most its 2 s; the next one sees what it found.
    const renderUntil = async (want: (text: string) => boolean) => {
      let text = await metrics.render()
      for (let i = 1; i < 20 && !want(text); i++) text = await metrics.render()
      return text
    }
    try {
      expect(await renderUntil((x) => x.includes(failed))).toContain(failed)
      proxy.down()
      // The recount falls due while the database is away: it fails, and its numbers are dropped.
      now += 5 * 60_000
      const down = await renderUntil((x) => !x.includes(failed))
      expect(down).toContain('outbox_database_up{db="default"} 0')
      expect(down).not.toContain(failed)
      proxy.up()
      // Back: the next scrapes count again, rather than leaving the series absent for 5 minutes.
      const back = await renderUntil((x) => x.includes(failed))
      expect(back).toContain('outbox_database_up{db="default"} 1')
      expect(back).toContain(failed)
    } finally {
      await handle.close()
      await proxy.close()
    }
  })

  test('an unreachable database drops its numbers and reports outbox_database_up 0', async () => {
    const dead = openDb({
      name: 'gone',
      url: 'postgres://nobody@127.0.0.1:1/none',
      log: silentLogger,
    })
    try {
      const metrics = createMetrics({
        databases: [{ name: 'gone', db: dead.db, statements: dead.statements }],
        health: fakeHealth(['gone']),
      })
      const text = await metrics.render()
      expect(text).toContain('outbox_database_up{db="gone"} 0')
      expect(text).not.toContain('outbox_rows{db="gone"')
    } finally {
      await dead.close()
    }
  })
})

/** /metrics as an app answers it whose metrics take `deps` (a Graph worker's gauges; none without one). */
async function scrapeWith(
  deps: Pick<
    Parameters<typeof createMetrics>[0],
    'senderMailboxRefused' | 'providerOutage' | 'credential'
  >,
): Promise<string> {
  const health = fakeHealth(['default'])
  const metrics = createMetrics({
    databases: [{ name: 'default', db: t.db, statements: t.statements }],
    health,
    ...deps,
  })
  const { app } = appOnDefault(t, { health, metrics })
  return (await send(app, 'GET', '/metrics')).body as string
}
