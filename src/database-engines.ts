// Each database's engine for `serve`: its schema check, its LISTEN session, its drainer.
import { hostname } from 'node:os'
import { systemClock } from './clock.ts'
import { urlVariable } from './config/database-list.ts'
import type { Config } from './config.ts'
import { databaseIdOnce } from './db/database-id.ts'
import {
  describeLocksInTheWay,
  LOCK_TIMEOUT_SQLSTATE,
  readLocksInTheWay,
} from './db/lock-in-the-way.ts'
import { loginRefusal } from './db/login-refusal.ts'
import type { DbHandle } from './db/open.ts'
import { assertSchemaCurrent } from './db/schema-state.ts'
import { PERMISSION_DENIED_SQLSTATE } from './db/sqlstate.ts'
import { probePoolTransactions, STATEMENT_POOLING_PROBLEM } from './db/statement-pooling.ts'
import { AppError, isAppError } from './errors.ts'
import type { Logger } from './log.ts'
import { createDrainer, type Drainer } from './outbox/drainer.ts'
import type { EngineEventHandler } from './outbox/events.ts'
import { createListener, type Listener } from './outbox/listener.ts'
import { type PickupPath, pickupPrimer } from './outbox/pickup-primes.ts'
import { createSlots } from './outbox/slots.ts'
import { PERMISSION_ADVICE } from './outbox/statement-timeout.ts'
import { workerIdentity } from './outbox/worker-identity.ts'
import type { Transport } from './transport-wiring.ts'
import { VERSION } from './version.ts'

/** The statements a send runs between its claim and its start, as the transport's gate will take it. */
export function pickupPathOf(
  config: Pick<Config, 'transport' | 'mailFrom'> & {
    limits: Pick<Config['limits'], 'mailboxRatePerMinute'>
  },
): PickupPath {
  // Graph's gate is the Postgres send gate (transport-wiring), which leaves the pause to the last
  // check without pacing, and pauses MAIL_FROM, whose pause then guards the claim (sql/0062).
  return config.transport === 'graph'
    ? {
        slotTake: true,
        lastCheck: config.limits.mailboxRatePerMinute > 0 ? 'plain' : 'with-pause',
        guardedClaim: config.mailFrom !== null,
      }
    : { slotTake: false, lastCheck: 'none', guardedClaim: false }
}

/** Starts each database's listener into `listeners` (filled as it goes, so a failed start can stop them). */
export function startListeners(
  config: Config,
  handles: readonly DbHandle[],
  listeners: Map<string, Listener>,
  drainers: ReadonlyMap<string, Drainer>,
  onEvent: EngineEventHandler,
  log: Logger,
): void {
  // The drainers, made after the schema check, may start after a session listens: it is primed.
  const prime = pickupPrimer(pickupPathOf(config))
  for (const [i, h] of handles.entries()) {
    const d = config.databases[i]!
    const listener = createListener({
      db: h.name,
      url: d.listenUrl,
      // The direct URL when one is set apart: the variable to fix is that one.
      urlVariable: urlVariable(d, config.databases, d.listenUrl !== d.url ? 'listenUrl' : 'url'),
      log,
      clock: systemClock,
      wake: (_reason, rowId) => drainers.get(h.name)?.wake(rowId),
      onEvent,
      checkIntervalMs: config.worker.listenCheckSeconds * 1000,
      mode: config.worker.listenMode,
      shared: h.listenSession,
      prime,
      connectionsRetired: h.connectionsRetired,
    })
    listeners.set(h.name, listener)
    listener.start()
  }
}

/** Starts each database's drainer into `drainers`; one worker identity and one set of send slots for all. */
export function startDrainers(
  config: Config,
  handles: readonly DbHandle[],
  transport: Transport,
  listeners: ReadonlyMap<string, Listener>,
  drainers: Map<string, Drainer>,
  onEvent: EngineEventHandler,
  log: Logger,
): void {
  transport.warmUp()
  const slots = createSlots(config.worker.concurrency)
  const worker = workerIdentity(hostname(), process.pid, VERSION)
  for (const h of handles) {
    const listener = listeners.get(h.name)
    // Graph's messages carry it and its lookups count only those: read now, or at the first send
    // or lookup should the database be away (statements' route: the shared session when free).
    const id = databaseIdOnce(h.statements)
    if (config.transport === 'graph') void id().catch(() => {})
    const drainer = createDrainer({
      dbName: h.name,
      db: h.statements.db,
      sender: transport.senderFor(h.name, id),
      gate: transport.gateFor(h, worker.id),
      slots,
      clock: systemClock,
      log,
      worker,
      config: config.worker,
      mailFrom: config.mailFrom,
      allowedSenders: config.allowedSenders,
      lookup: transport.lookupFor(h.name, id),
      ambiguousPolicy: config.graph?.ambiguousSendPolicy ?? 'resend',
      // Without a listener the backstop poll is the only wake-up, so it must be quick.
      pollIntervalMs: () =>
        listener?.state() === 'polling'
          ? Math.min(1000, config.worker.pollIntervalSeconds * 1000)
          : config.worker.pollIntervalSeconds * 1000,
      sendBlockedForMs: transport.blockedForMs,
      sendBlockedBy: transport.blockedBy,
      ...(config.graph ? { sendTimeoutMs: config.graph.requestTimeoutMs } : {}),
      onEvent,
    })
    drainers.set(h.name, drainer)
    drainer.start()
  }
  log.info('workers started', {
    databases: handles.map((h) => h.name),
    transport: transport.sender.name,
    concurrency: config.worker.concurrency,
    workerId: worker.id,
  })
}

/**
 * How long serve's start waits for a lock on mailer.schema_migrations (a LOCK TABLE, VACUUM FULL
 * or ALTER TABLE left open): past it the start goes on, as for an unreachable database, rather than
 * wait out the pool's statement_timeout.
 */
const START_LOCK_TIMEOUT_MS = 2_000

/**
 * Checks every database's schema at once; returns the names found current. A verdict (missing,
 * outdated) ends the start; an unreachable database does not: the loops retry, readiness reports it.
 */
export async function checkSchemas(handles: readonly DbHandle[], log: Logger): Promise<string[]> {
  // Before the schema check, whose connection it leaves open for it: a pooler in statement mode
  // ends every transaction, and claims, settlements and enqueues run in transactions.
  const probes = await Promise.all(handles.map((h) => probePoolTransactions(h.pool)))
  const pooled = handles.find((_, i) => probes[i]!.refuses)
  if (pooled) throw new AppError('config_invalid', `${pooled.name}: ${STATEMENT_POOLING_PROBLEM}`)
  // A database the probe could not reach is not asked again: a second connect's wait (10 s, or a
  // statement's 60 s) would hold back every database's start; the probe's failure is the outcome.
  const outcomes = await Promise.allSettled(
    handles.map((h, i) =>
      probes[i]!.failure !== null
        ? Promise.reject(probes[i]!.failure)
        : assertSchemaCurrent(h.pool, h.name, undefined, { lockTimeoutMs: START_LOCK_TIMEOUT_MS }),
    ),
  )
  const current: string[] = []
  for (const [i, r] of outcomes.entries()) {
    const db = handles[i]!.name
    if (r.status === 'fulfilled') {
      current.push(db)
      if (r.value.newer.length > 0) {
        log.warn('database has migrations from a newer release; they keep this one working', {
          db,
          newer: r.value.newer,
        })
      }
    } else if (isAppError(r.reason)) {
      throw r.reason
    } else if ((r.reason as { code?: unknown }).code === LOCK_TIMEOUT_SQLSTATE) {
      // The server answered; the start goes on as for an outage, and readiness names the lock.
      const locks = await readLocksInTheWay(handles[i]!.pool, 'mailer.schema_migrations').catch(
        () => [],
      )
      const who =
        locks.length > 0 ? describeLocksInTheWay(locks) : 'a lock on mailer.schema_migrations'
      log.warn(`${who} blocks the schema check at start; will keep trying`, {
        db,
        sqlstate: LOCK_TIMEOUT_SQLSTATE,
      })
    } else if ((r.reason as { code?: unknown }).code === PERMISSION_DENIED_SQLSTATE) {
      // The server answered (CONNECT refused, a right on the schema revoked): no network to check.
      // A grant mends it without a restart, so the start goes on as for an outage.
      log.warn(
        `the database refused this service's role a privilege at start (SQLSTATE ${PERMISSION_DENIED_SQLSTATE}): ${PERMISSION_ADVICE}; will keep trying`,
        { db, sqlstate: PERMISSION_DENIED_SQLSTATE, err: r.reason },
      )
    } else {
      // The server answered: a password, a role or a database name to fix outside the process,
      // after which the next connection succeeds, so the start goes on as for an outage.
      const login = loginRefusal(r.reason)
      if (login) {
        log.warn(
          `the database refused this service's connection at start (SQLSTATE ${login.sqlstate}: ${login.cause}): ${login.advice}; will keep trying`,
          { db, sqlstate: login.sqlstate, err: r.reason },
        )
      } else log.warn('database unreachable at start; will keep trying', { db, err: r.reason })
    }
  }
  return current
}
