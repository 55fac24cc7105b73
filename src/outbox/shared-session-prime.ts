// The prime of a shared LISTEN session once it listens (not once the process is stopping): the worker's pickup statements run for no row, in its owner's turn, bounded.
import type pg from 'pg'
import { waitAtMost } from '../clock.ts'
import { primeSessionBounded } from '../db/primed-pool.ts'
import type { SharedSession } from '../db/shared-session.ts'
import { primeNotifiedClaim } from './claim.ts'
import type { ListenerDeps } from './listener-deps.ts'

/**
 * A shared session carries the worker's claims and sends: it runs their statements once now for no
 * row (d.prime; the notified claim alone by default), in its owner's turn (a statement of the route
 * meanwhile waits, the sweep's claim too), so the first row after a (re)connect waits for no cold
 * plan. The turn lasts until the prime ends (a client runs one query at a time, and the prime's
 * lock_timeout is reset last); past a check's bound (`timeoutMs`) the statements waiting for it take
 * the pool. A failure costs only that row the plans, and a dead session is the checks' to find. A
 * table lock (a CREATE INDEX) fails it at once rather than leave the statements queued behind it
 * waiting (primeSessionBounded).
 */
export function primeSharedSession(
  shared: SharedSession,
  client: pg.Client,
  d: Pick<ListenerDeps, 'clock' | 'prime'>,
  timeoutMs: number,
): void {
  // Stopping: no pickup will come, and the stop's statements would wait out the prime's turn (up to
  // `timeoutMs`, several round trips each when the database is slow).
  if (shared.primeWanted?.() === false) return
  const prime = d.prime ?? primeNotifiedClaim
  const overdue = new AbortController()
  const primed = shared.inTurn(() => primeSessionBounded(client, prime), overdue.signal)
  void waitAtMost(d.clock, primed, timeoutMs).catch(() => overdue.abort())
}
