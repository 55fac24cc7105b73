// What readiness and liveness report about each database's engine; produced by the drainer, read by the API.
import type { ListenerState } from './events.ts'

export interface DatabaseHealth {
  name: string
  /** The last probe reached the database. */
  reachable: boolean
  /** The schema is exactly what this binary expects. */
  migrated: boolean
  /** `disabled` when this process runs with --role api. */
  worker: 'running' | 'starting' | 'stopped' | 'disabled'
  listener: ListenerState | 'disabled'
  /** Epoch ms of the worker loop's last completed iteration. */
  lastLoopAt: number | null
  /** A short, secret-free reason when something is wrong. */
  problem: string | null
}

export interface HealthSource {
  /** Probes each database (bounded by a timeout) and reports its engine's state. */
  readiness(): Promise<DatabaseHealth[]>
  /** Each database's listener as this process last knew it, without asking the database (metrics). */
  listenerStates(): Pick<DatabaseHealth, 'name' | 'listener'>[]
  /** Liveness: false when a worker loop is wedged (no iteration for far longer than it should take). */
  liveness(): { ok: boolean; problems: string[] }
}
