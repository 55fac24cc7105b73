// Each database's engine for `serve`: its LISTEN session, its drainer (the schema check before them: schema-check-at-start.ts).
import { hostname } from 'node:os'
import { systemClock } from './clock.ts'
import { urlVariable } from './config/database-list.ts'
import type { Config } from './config.ts'
import { databaseIdOnce } from './db/database-id.ts'
import type { DbHandle } from './db/open.ts'
import type { Logger } from './log.ts'
import { createDrainer, type Drainer } from './outbox/drainer.ts'
import type { EngineEventHandler } from './outbox/events.ts'
import { createListener, type Listener } from './outbox/listener.ts'
import { type PickupPath, pickupPrimer } from './outbox/pickup-primes.ts'
import { createSlots } from './outbox/slots.ts'
import type { WorkerIdentity } from './outbox/worker-identity.ts'
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

/**
 * The identity this process's workers register, hold send slots and take their liveness locks
 * under (holder-lock.ts): one for every database.
 */
export function processWorker(): WorkerIdentity {
  return workerIdentity(hostname(), process.pid, VERSION)
}

/**
 * Starts each database's listener into `listeners` (filled as it goes, so a failed start can stop
 * them); each session that listens holds `worker`'s liveness lock.
 */
export function startListeners(
  config: Config,
  worker: WorkerIdentity,
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
      owedRowsHeld: () => drainers.get(h.name)?.owedRowsHeld(),
      workerStopped: () => drainers.get(h.name)?.workerStopped(),
      onEvent,
      checkIntervalMs: config.worker.listenCheckSeconds * 1000,
      mode: config.worker.listenMode,
      shared: h.listenSession,
      prime,
      connectionsRetired: h.connectionsRetired,
      holder: worker.id,
    })
    listeners.set(h.name, listener)
    listener.start()
  }
}

/** Starts each database's drainer into `drainers`; one worker identity and one set of send slots for all. */
export function startDrainers(
  config: Config,
  worker: WorkerIdentity,
  handles: readonly DbHandle[],
  transport: Transport,
  listeners: ReadonlyMap<string, Listener>,
  drainers: Map<string, Drainer>,
  onEvent: EngineEventHandler,
  log: Logger,
): void {
  transport.warmUp()
  const slots = createSlots(config.worker.concurrency)
  for (const h of handles) {
    // startListeners made one for each database: a drainer without it would poll as if deaf.
    const listener = listeners.get(h.name)
    if (!listener) throw new Error(`no listener for database ${h.name}`)
    // Graph's messages carry it and its lookups count only those: read now, or at the first send
    // or lookup should the database be away (statements' route: the shared session when free).
    const id = databaseIdOnce(h.statements)
    if (config.transport === 'graph') void id().catch(() => {})
    const drainer = createDrainer({
      dbName: h.name,
      db: h.statements.db,
      poolDb: h.db,
      sender: transport.senderFor(h.name, id),
      // Its slots are taken again once its LISTEN session, holding its liveness lock, ends.
      gate: transport.gateFor(h, worker.id, () => listener.holderLockNote()),
      slots,
      clock: systemClock,
      log,
      worker,
      config: config.worker,
      mailFrom: config.mailFrom,
      allowedSenders: config.allowedSenders,
      lookup: transport.lookupFor(h.name, id),
      ambiguousPolicy: config.graph?.ambiguousSendPolicy ?? 'resend',
      listener,
      sendBlockedForMs: transport.blockedForMs,
      sendBlockedBy: transport.blockedBy,
      ...(transport.heldForToken ? { heldForToken: transport.heldForToken } : {}),
      ...(transport.credential
        ? {
            credentialRefusal: transport.credential.refusal,
            credentialRefusalChanged: transport.credential.onRefusalChanged,
          }
        : {}),
      ...(transport.onTokenCame ? { tokenCame: transport.onTokenCame } : {}),
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
