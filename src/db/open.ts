// Opens one database: a pg pool (application_name outbox-mailer) wrapped in Kysely.
import { Kysely, PostgresDialect } from 'kysely'
import type pg from 'pg'
import { monotonicNow, systemClock } from '../clock.ts'
import { createFailureRun } from '../failure-run.ts'
import type { Logger } from '../log.ts'
import { preparingClient } from './prepared-statements.ts'
import { PrimedPool } from './primed-pool.ts'
import type { Queryable } from './queryable.ts'
import { READ_ONLY_HOLD_OFF_MS, readOnlyEras } from './read-only-server.ts'
import type { Database } from './schema.ts'
import { connectionSettings, isoSessionClient } from './session-settings.ts'
import type { SharedSession } from './shared-session.ts'
import { READ_ONLY_SQLSTATE } from './sqlstate.ts'
import { createStatementRoute, type StatementRoute } from './statement-route.ts'

const POOL_APPLICATION_NAME = 'outbox-mailer'

export interface DbHandle {
  name: string
  pool: pg.Pool
  db: Kysely<Database>
  /** For statements that run on their own: the worker's, readiness, a scrape's (see statement-route). */
  statements: StatementRoute
  /** For the listener, when it may carry `statements` (`shareListenSession`); else null. */
  listenSession: SharedSession | null
  /**
   * Resolves when the connections opened until now are retired: a write met a read-only server (a
   * failover, see read-only-server). A LISTEN session on a URL of its own reconnects then.
   * `signal` drops the wait (a session that ended first).
   */
  connectionsRetired(signal?: AbortSignal): Promise<{ first: boolean }>
  /** Writes refused as read-only: since when (null: none lately), and the probe's word that they are taken again. */
  writes: { refusingSince(): number | null; accepted(): void }
  /**
   * The process is stopping: no connection is primed from now on (PoolPrime.stillWanted), nor a
   * LISTEN session that (re)connects (SharedSession.primeWanted), and the connections open now
   * stay open until close() for the stop's statements.
   */
  stopBegan(): void
  close(): Promise<void>
}

interface OpenOptions {
  name: string
  url: string
  maxConnections?: number
  log: Logger
  applicationName?: string
  /** How long an idle connection stays open (default 10 s). */
  idleTimeoutMs?: number
  /**
   * A listener LISTENs on this same URL: statements that run on their own take its session when
   * it is free, and an idle pool closes all its connections. Otherwise the pool keeps one open.
   */
  shareListenSession?: boolean
  /**
   * The clock of `statements.answeredAt()`, `writes` and the read-only hold-off: a monotonic reading
   * (default the system's, as the health monitor's), for ages only.
   */
  monotonicNow?: () => number
  /**
   * Run before a connection's first statement: with a shared session, on every connection the pool
   * opens; without, on one it opens while it holds no other (the one it keeps for an idle worker:
   * at start, and each time it is replaced).
   */
  prime?: (connection: Queryable) => Promise<void>
}

export function openDb(o: OpenOptions): DbHandle {
  const elapsed = o.monotonicNow ?? (() => monotonicNow(systemClock))
  const eras = readOnlyEras(
    isoSessionClient(
      preparingClient((err) =>
        o.log.warn(
          'the database connection does not keep prepared statements (a transaction pooler?); sending every statement unnamed from now on',
          { db: o.name, err },
        ),
      ),
    ),
    {
      // A standby named by the URL refuses every write for as long as it is named: its start, then
      // a line every 5 minutes while it lasts, so a log read at any time shows it.
      refusals: createFailureRun({
        log: o.log,
        clock: o.monotonicNow ? { now: o.monotonicNow } : systemClock,
        msg: 'the database refused a write as read-only (a standby, or a primary demoted by a failover); closing the connections opened before, the next statement opens a new one (while writes keep being refused, at most once per hold-off)',
        fields: { db: o.name, sqlstate: READ_ONLY_SQLSTATE, holdOffMs: READ_ONLY_HOLD_OFF_MS },
      }),
      onAccepted: (ended) =>
        o.log.info('the database takes writes again', { db: o.name, ...ended }),
      monotonicNow: elapsed,
    },
  )
  const Client = eras.Client
  // The pool's connections and a shared LISTEN session are set up alike.
  const session = connectionSettings(o.url)
  const prime = o.prime
  // The process is stopping (stopBegan): no prime from then on.
  let stopping = false
  const pool: PrimedPool = new PrimedPool(
    {
      ...session,
      application_name: o.applicationName ?? POOL_APPLICATION_NAME,
      max: o.maxConnections ?? 8,
      // An idle worker needs one connection at most, and a row after a quiet spell must not wait for
      // a reconnect (pickup after 11 s idle: 36 → 8 ms, bench round 6). With a shared LISTEN session
      // that one is the session; without, the pool keeps one open. The rest close after 10 s idle.
      min: o.shareListenSession ? 0 : 1,
      idleTimeoutMillis: o.idleTimeoutMs ?? 10_000,
      // Recycle before proxies (e.g. Fly's) close long-lived connections under us.
      maxLifetimeSeconds: 600,
      // The hot path's statements are prepared per connection, unless a pooler cannot keep them.
      Client,
    },
    (err) =>
      o.log.warn(
        'the database connection refuses statement_timeout at startup (a pooler such as PgBouncer); connecting without it from now on, statements bounded by the client-side timeout only',
        { db: o.name, err },
      ),
    eras.retired,
    // The connection kept for an idle worker's statements is replaced every maxLifetimeSeconds (and
    // after a lost one): unprimed, the first pickup after each found its claim cold (2.8 ms against
    // 1.5, round 31's bench/cold-claim.ts). Beside a shared session a pool connection serves a pickup
    // whenever the session is busy, so each is primed (unprimed: +15-40 ms, round 38); without one, a
    // pool holding others claims warm on those. The prime runs at the connection's first release
    // (PrimedPool), not at its connect, where it held a start's schema check and first readiness
    // probe behind a cold claim (+70 ms, round 39). A failure (no schema yet, a table lock) costs
    // only the head start.
    prime && {
      run: prime,
      wanted: () => !stopping && (o.shareListenSession === true || pool.totalCount === 1),
      stillWanted: () => !stopping,
    },
  )
  let closed = false
  // An idle client's socket error must not crash the process; the next checkout reconnects.
  // Once close() began, an error on a connection it is ending is that end met half-way: the server
  // shut down, or ended the session, before it read our goodbye (57P01 when dev's Ctrl+C stops its
  // Postgres right after the engine; pg-pool's end() does not wait for the goodbye to be read).
  // Nothing was in flight on it: no warning on a clean stop.
  pool.on('error', (err) => {
    if (closed)
      o.log.debug('database pool connection ended with an error while closing', { db: o.name, err })
    else o.log.warn('database pool connection error', { db: o.name, err })
  })
  // The pool listens to a client only while it is idle: a connection lost while a caller holds it
  // (a statement running, a transaction open) would be an uncaught 'error'. Its caller's statement
  // fails and says so, and the pool drops the client when it comes back.
  pool.on('connect', (client) => client.on('error', () => {}))
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  // Whether the session's last client asked for statement_timeout: only its refusal is a reason
  // to connect again at once (no loop, whatever a pooler answers).
  let sessionAsked = false
  const { route, session: shared } = createStatementRoute(
    pool,
    {
      newClient: (applicationName) => {
        sessionAsked = pool.startupTimeout !== undefined
        return new Client({
          ...session,
          statement_timeout: pool.startupTimeout,
          application_name: applicationName,
        })
      },
      // serve connects the LISTEN session while the pool reads the schema: either may meet the
      // refusal first.
      refusedAtStartup: (err) => sessionAsked && pool.dropsStartupTimeout(err),
      retired: eras.retired,
    },
    elapsed,
  )
  return {
    name: o.name,
    pool,
    db,
    statements: route,
    // A session that (re)connects during a stop is lent to the stop's statements unprimed.
    listenSession: o.shareListenSession ? { ...shared, primeWanted: () => !stopping } : null,
    connectionsRetired: eras.ended,
    writes: { refusingSince: eras.refusingSince, accepted: eras.accepted },
    stopBegan: () => {
      stopping = true
      // An idle connection closed during the stop (10 s, sends still at Graph) was opened again by
      // the recording: a connect and a login of several round trips when the database is slow.
      // pg-pool's idle timeout spares `min` connections, read when it fires.
      pool.options.min = Math.max(pool.options.min ?? 0, pool.totalCount)
    },
    close: async () => {
      if (closed) return
      closed = true
      await db.destroy()
      // Kysely ends the pool only if it ever took a connection from it; a start refused after a
      // schema check on the pool itself did not.
      if (!pool.ended) await pool.end()
    },
  }
}
