// Live numbers for /metrics: one statement per scrape, one in flight at a time, and an empty outbox's numbers reused while nothing could have changed them.
import { type Clock, waitAtMost } from '../clock.ts'
import type { LiveStats } from '../outbox/stats.ts'

export interface LiveStatsReader {
  /** The live numbers, read now or reused (see createLiveStatsReader); waits at most `waitMs`. */
  get(waitMs: number): Promise<LiveStats>
  /** Something happened on this database (any engine event): the numbers read so far may be old. */
  changed(): void
}

/**
 * A read waited for past `waitMs` finishes in the background (the pool's statement_timeout bounds
 * it) and the next `get` waits for that one instead of sending another.
 *
 * Reuse: a read that found no row pending or sending and no mailbox paused, begun while the
 * database's LISTEN session was listening, stands for `reuseMs` while that session stays listening
 * and no engine event of the database arrives (a pause ends with time, or by hand, unheard). Invariant: a row becomes pending only by an insert (the outbox's trigger
 * notifies) or a requeue (wakeWorkers notifies), and becomes sending only by a claim of a pending
 * row; so while the session hears no notification the outbox stays empty, and only the NOTIFY
 * queue's fill (other sessions of the cluster fill it) can move: `reuseMs` bounds how old that is.
 * A session that stopped hearing (a half-open socket) is found by the listener's check, which
 * changes its state. Every engine event counts, whatever it says: a claim, a settlement, a
 * reclaim, a listener state, a notification.
 */
export function createLiveStatsReader(d: {
  read: () => Promise<LiveStats>
  clock: Clock
  /** 0: every scrape reads. Needs `changed()` fed with the database's engine events (serve does). */
  reuseMs: number
  /** The database's LISTEN session is listening now. */
  listening: () => boolean
}): LiveStatsReader {
  let events = 0
  let reusable: { stats: LiveStats; readAt: number; events: number } | null = null
  let running: Promise<LiveStats> | null = null

  function read(): Promise<LiveStats> {
    const readAt = d.clock.now()
    const eventsBefore = events
    const heard = d.listening()
    const p = d.read().then(
      (stats) => {
        reusable =
          heard && stats.pending === 0 && stats.sending === 0 && !stats.pausedMailboxes
            ? { stats, readAt, events: eventsBefore }
            : null
        return stats
      },
      (error: unknown) => {
        reusable = null
        throw error
      },
    )
    running = p
    p.then(
      () => {
        running = null
      },
      () => {
        running = null
      },
    )
    return p
  }

  return {
    get(waitMs) {
      const r = reusable
      // A wall clock set back must not make an old read look recent: an age below 0 is none.
      const age = r ? d.clock.now() - r.readAt : Number.NaN
      if (
        r &&
        d.reuseMs > 0 &&
        r.events === events &&
        d.listening() &&
        age >= 0 &&
        age < d.reuseMs
      ) {
        return Promise.resolve(r.stats)
      }
      return waitAtMost(d.clock, running ?? read(), waitMs)
    },
    changed() {
      events++
    },
  }
}
