// What the health monitor is given: the databases it probes (their drainer, listener and answers) and its limits.
import type { Queryable } from '../db/queryable.ts'
import type { Drainer } from './drainer.ts'
import type { ClaimsFailingWindows } from './failing-claims-problem.ts'
import type { Listener } from './listener.ts'

export interface MonitoredDatabase {
  name: string
  /** Where a probe's one statement goes (the pool, or the statement route). */
  statements: Queryable
  /**
   * When the database last answered a statement of the worker's (statement route), on the
   * monitor's `monotonicNow`; null when none did, or one failed since. Absent: every probe asks.
   */
  answeredAt?: () => number | null
  /**
   * Writes refused as read-only (25006): since when, on the monitor's `monotonicNow` (null: none lately), and
   * how the probe says a server asked since takes them again (openDb's `writes`).
   */
  writes?: { refusingSince(): number | null; accepted(): void }
  /** Absent under --role api. */
  drainer: Drainer | null
  listener: Listener | null
}

export interface HealthMonitorOptions {
  databases: readonly MonitoredDatabase[]
  /** Databases whose schema the caller found current just now (serve's start): not read again yet. */
  schemaCurrent?: readonly string[]
  /**
   * Of those, the ones whose session the caller found taking writes by the same statement, its
   * answer noted on the database's `answeredAt`: the first probe may stand on it, as on a probe's.
   */
  takingWrites?: readonly string[]
  /** Of those, each one whose encoding the same statement found not UTF8, with its encoding. */
  notUtf8?: Readonly<Record<string, string>>
  probeTimeoutMs?: number
  /** A loop silent for longer than this is wedged. */
  wedgedAfterMs: number
  /** When failing claims make a database unready (default CLAIMS_FAILING_WINDOWS; tests shorten it). */
  claimsFailing?: ClaimsFailingWindows
  /** A process-wide problem that stops sending (e.g. the provider refuses our credential). */
  transportProblem?: () => string | null
  /**
   * What `transportProblem` makes of a database with a worker: `unready` (the default) where
   * sending is the process's one job (--role worker: its check is outside routing, so a 503 is an
   * alert only), `warning` where the process also takes mail (--role all: readiness is "can accept
   * and store mail", and a 503 would take the API, enqueue included, out of the platform's routing
   * while nothing is wrong with storing rows). Readiness' other conditions are the same for both.
   */
  transportProblemMakes?: 'unready' | 'warning'
  /** A process-wide problem that stops no send yet (a refused credential while a cached token serves). */
  transportWarning?: () => string | null
  /**
   * A monotonic reading in ms (default the system's), the clock of `answeredAt` and `writes`: ages
   * only, so a step of the wall clock neither ages an answer nor makes a failure older.
   */
  monotonicNow?: () => number
}
