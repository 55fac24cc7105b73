// A listening session watched until it ends: checked each interval, its lock retaken, cut short by its loss, its era's retirement or a stop.
import type pg from 'pg'
import { monotonicNow } from '../clock.ts'
import type { ListenerDeps } from './listener-deps.ts'
import { stillListening } from './listening-check.ts'
import { waitCheckInterval } from './lock-retake-wait.ts'

/** Returns once the session is over: lost, its era retired, a check failed, or `stopping` aborted. */
export async function watchListening(w: {
  client: pg.Client
  d: ListenerDeps
  /** Resolves when the session's connection is lost. */
  lost: Promise<void>
  /** Resolves when the connections of the session's era are retired (d.connectionsRetired). */
  retired: Promise<{ first: boolean }> | undefined
  /** The session's end, aborted here once it is over. */
  over: AbortController
  stopping: AbortSignal
  checkTimeoutMs: number
  /** When a statement on the shared session last answered (a monotonic reading). */
  answeredAt: () => number
  /** Whether the session holds the worker's liveness lock (holder-lock.ts). */
  lockHeld: () => boolean
  /** Takes that lock again, when the worker wants one (d.holder); else null. */
  retakeLock: (() => Promise<void>) | null
}): Promise<void> {
  const { client, d, over, stopping, checkTimeoutMs } = w
  // The session's end (lost, or its era retired) or a stop cuts the wait between checks short:
  // one signal for the session, not a race against a promise of its own at every interval,
  // each of which stayed attached to that promise while the session lasted (weeks: one per
  // interval, never collected).
  let why = 'tick' as 'lost' | 'retired' | 'retired-again' | 'tick'
  const end = (reason: 'lost' | 'retired' | 'retired-again') => {
    if (why === 'tick') why = reason
    over.abort()
  }
  void w.lost.then(() => end('lost'))
  void w.retired?.then(({ first }) => end(first ? 'retired' : 'retired-again'))
  const cutShort = AbortSignal.any([stopping, over.signal])
  const waitInterval = () =>
    waitCheckInterval({
      clock: d.clock,
      intervalMs: d.checkIntervalMs,
      signal: cutShort,
      held: w.lockHeld,
      retake: w.retakeLock,
    })
  while (!stopping.aborted) {
    await waitInterval()
    // Once per episode: a standby named by the URL retires them once per hold-off.
    if (why === 'retired' && !stopping.aborted) {
      d.log.info('connections retired after a read-only refusal; reconnecting the LISTEN session', {
        db: d.db,
      })
    }
    if (why !== 'tick' || stopping.aborted) break
    if (!w.lockHeld() && w.retakeLock) await w.retakeLock()
    // A half-open socket answers nothing: the timed check is what notices it. On a shared
    // session, a statement answered within the interval showed the socket alive (and a live
    // session keeps its LISTEN): no check, so idle the backstop poll and readiness stand in
    // for it, and a dead socket is noticed within two intervals of its last answer, not one.
    // A check waits for the statement on the session, within the same bound.
    if (monotonicNow(d.clock) - w.answeredAt() < d.checkIntervalMs) continue
    const listening = stillListening(client, d, {
      timeoutMs: checkTimeoutMs,
      over: over.signal,
      answeredAt: w.answeredAt,
    })
    if (!(await listening)) {
      d.log.warn('listener check failed; reconnecting', { db: d.db })
      break
    }
  }
}
