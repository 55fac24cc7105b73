// migrate's whole-run deadline (MIGRATE_DEADLINE_SECONDS, --deadline): the time left of it, and the watch that stops the migrating session's statement when it comes.
import type { Socket } from 'node:net'
import type pg from 'pg'
import { monotonicNow, systemClock, waitAtMost } from '../clock.ts'
import { SessionClient } from './session-settings.ts'

/** One for the whole run, every database's migrate sharing it (migrate-every.ts). */
export interface MigrateDeadline {
  /** As configured, for the messages. */
  seconds: number
  /** When it comes, on systemClock's monotonic clock (performance.now()). */
  at: number
}

/** The run's deadline, `seconds` from now; null for 0 (none: a long index build run by hand). */
export function migrateDeadline(seconds: number): MigrateDeadline | null {
  return seconds > 0 ? { seconds, at: monotonicNow(systemClock) + seconds * 1000 } : null
}

/** Milliseconds left of it; Infinity without one. */
export const leftOf = (d: MigrateDeadline | null): number =>
  d === null ? Number.POSITIVE_INFINITY : d.at - monotonicNow(systemClock)

/** `ms`, or what is left of the deadline when less; at least 1 (a bound of 0 is none to the driver). */
export const withinDeadline = (d: MigrateDeadline | null, ms: number): number =>
  Math.max(1, Math.min(ms, Math.ceil(leftOf(d))))

/**
 * How long the session's statement has to end once cancelled, and how long each step of the second
 * session that signals it (its connect, its statement, its end) may take.
 */
const CANCEL_GRACE_MS = 5_000

/**
 * The most a run goes on past its deadline: the cancel's grace, then the terminate's connect,
 * statement and end, then the cut-off session's own end (migrate.ts, 1 s) (release-files.test.ts
 * holds the default deadline plus this within Fly's window).
 */
export const LONGEST_PAST_DEADLINE_MS = CANCEL_GRACE_MS * 4 + 1_000

export interface DeadlineWatch {
  /** The deadline came while the run used the session: whatever it ran was cancelled. */
  readonly reached: boolean
  /** The cancelled statement did not end within the grace: the socket was reset, the backend terminated. */
  readonly cutOff: boolean
  /** Aborted when the deadline comes: the work beside the session (the own-session check's second one) ends with it. */
  readonly signal: AbortSignal
  /** No signal is sent after it; resolves once those sent have been answered (or given up). */
  stop(): Promise<void>
}

/**
 * At the deadline, cancels what the session runs (a lock wait, an index build, a migration's own
 * work) with pg_cancel_backend from a second session of the same role: in a transaction, the
 * rollback undoes it; a statement outside one stops where it was. A session not done within
 * CANCEL_GRACE_MS (a cancel that came between two statements, a server that stopped answering) has
 * its socket reset and its backend terminated, so the run ends with its message before Fly ends it
 * without one.
 */
export function watchDeadline(
  client: pg.Client,
  o: { url: string; pid: number; applicationName: string; deadline: MigrateDeadline | null },
): DeadlineWatch {
  const state = { reached: false, cutOff: false }
  const reaching = new AbortController()
  const timers: ReturnType<typeof setTimeout>[] = []
  const sent: Promise<void>[] = []
  const signal = async (fn: 'pg_cancel_backend' | 'pg_terminate_backend') => {
    const other = new SessionClient({
      connectionString: o.url,
      application_name: o.applicationName,
      connectionTimeoutMillis: CANCEL_GRACE_MS,
      query_timeout: CANCEL_GRACE_MS,
    })
    other.on('error', () => {})
    try {
      await other.connect()
      await other.query(`select ${fn}($1)`, [o.pid])
    } catch {
      // Unreachable: the reset ends our side all the same, the server's lock_timeout its wait.
    } finally {
      await waitAtMost(systemClock, other.end(), CANCEL_GRACE_MS).catch(() => resetSession(other))
    }
  }
  if (o.deadline !== null) {
    const cut = () => {
      state.cutOff = true
      resetSession(client)
      sent.push(signal('pg_terminate_backend'))
    }
    const reach = () => {
      state.reached = true
      reaching.abort()
      sent.push(signal('pg_cancel_backend'))
      timers.push(setTimeout(cut, CANCEL_GRACE_MS))
    }
    timers.push(setTimeout(reach, Math.max(0, leftOf(o.deadline))))
  }
  return {
    get reached() {
      return state.reached
    },
    get cutOff() {
      return state.cutOff
    },
    signal: reaching.signal,
    async stop() {
      for (const t of timers) clearTimeout(t)
      await Promise.all(sent)
    },
  }
}

/** Ends a session's socket at once: end() only asks the server, which may never answer. */
export function resetSession(client: pg.Client) {
  // Idle, a reset session would raise an error event with nobody listening.
  client.on('error', () => {})
  const stream = (client as unknown as { connection?: { stream?: Partial<Socket> } }).connection
    ?.stream
  if (stream?.resetAndDestroy) stream.resetAndDestroy()
  else stream?.destroy?.()
}
