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
  /** A short, secret-free reason to act that does not make the database unready (yet). */
  warning: string | null
}

/**
 * The database's wake-ups are in hand: its LISTEN session listens, or the worker polls by design
 * (LISTEN_MODE=poll, or LISTEN found impossible), or this process wants none (--role api). Any other
 * state (connecting, reconnecting, stopped) is a session lost or not yet there: the database may
 * have gone away, and the instance should not look ready while its wake-ups are lost.
 */
export function sessionHolds(listener: ListenerState | 'disabled'): boolean {
  return listener === 'listening' || listener === 'polling' || listener === 'disabled'
}

export interface HealthSource {
  /** Probes each database (bounded by a timeout) and reports its engine's state. */
  readiness(): Promise<DatabaseHealth[]>
  /** Each database's listener as this process last knew it, without asking the database (metrics). */
  listenerStates(): Pick<DatabaseHealth, 'name' | 'listener'>[]
  /** Liveness: false when a worker loop is wedged (no iteration for far longer than it should take). */
  liveness(): { ok: boolean; problems: string[] }
}
