// What one database's listener is given: its URLs, its wake-up, its checks and the session it may share.
import type { Clock } from '../clock.ts'
import type { Queryable } from '../db/queryable.ts'
import type { SharedSession } from '../db/shared-session.ts'
import type { Logger } from '../log.ts'
import type { EngineEventHandler } from './events.ts'

export interface ListenerDeps {
  db: string
  url: string
  /** The variable `url` came from (LISTEN_DATABASE_URL…): a refused connect names it, in the log and readiness. */
  urlVariable?: string
  log: Logger
  clock: Clock
  /**
   * Called on a notification (with the row it names, if any), after every successful (re)LISTEN,
   * so nothing missed stays unsent, and when a session is lost or none could be opened (`lost`: the
   * drainer's backstop poll is short from then on until one listens).
   */
  wake: (reason: 'notification' | 'sweep' | 'lost', rowId?: string) => void
  /**
   * Called on sql/0116's notification: rows waiting for a mailbox's owed probe stayed locked at its
   * end. Required beside `wake`, so that no builder of a worker (serve, the test and bench engines)
   * can leave its drainer deaf to it; a listener with no drainer says so with a no-op.
   */
  owedRowsHeld: () => void
  /**
   * Called on a clean stop's notification (worker-stopped-notice.ts): a worker that could send
   * left the registry. Required as `owedRowsHeld` is; a listener with no drainer passes a no-op.
   */
  workerStopped: () => void
  onEvent?: EngineEventHandler
  checkIntervalMs: number
  checkTimeoutMs?: number
  maxBackoffMs?: number
  /**
   * The worker's holder id: a session that listens takes its liveness lock (holder-lock.ts), which
   * ends with the session, so the worker's send slots are taken again once it dies. Absent: none.
   */
  holder?: string
  /** `poll` never connects: for transaction poolers where LISTEN cannot work. */
  mode: 'auto' | 'poll'
  /** The pool's statement route, when this session may carry its statements (same URL). */
  shared?: SharedSession | null
  /**
   * Run once on a shared session when it starts listening, in its owner's turn: the worker's pickup
   * statements for no row (pickup-primes.ts). Default: the notified claim alone (primeNotifiedClaim).
   */
  prime?: (session: Queryable) => Promise<void>
  /**
   * Resolves when the database's connections opened until now are retired (a write met a read-only
   * server: a failover). A session of its own is then reconnected; a shared one the route drops.
   * `signal` aborts when the session ends, dropping the wait: one per reconnect otherwise stayed
   * attached to an era that may outlast a flapping network's thousands of reconnects.
   */
  connectionsRetired?: (signal: AbortSignal) => Promise<{ first: boolean }>
}
