// Due timer: one timer for the earliest time it is armed for (a scheduled or retried row, the backstop poll).
import { type Clock, monotonicNow } from '../clock.ts'

export interface DueTimer {
  /** Wake in `ms`, unless a timer already wakes sooner (or `ms` reaches the horizon). */
  arm(ms: number): void
  clear(): void
}

export function createDueTimer(d: {
  clock: Clock
  /** Times this far off are not armed: for a scheduled row, the backstop poll comes first anyway. */
  horizonMs: () => number
  stopped: () => boolean
  fire: () => void
}): DueTimer {
  let timer: ReturnType<typeof setTimeout> | null = null
  // When the timer fires, on the monotonic clock: setTimeout counts elapsed time, and so must the
  // comparison. On the wall clock a forward step made every sooner arm look later than the timer
  // (dropped: the row waited for the backstop poll), a backward step every later one sooner.
  let at = 0
  return {
    arm(ms) {
      if (ms >= d.horizonMs() || d.stopped()) return
      const when = monotonicNow(d.clock) + ms
      if (timer && at <= when) return
      if (timer) clearTimeout(timer)
      at = when
      // A few ms late rather than early: a claim a hair before send_at would find nothing due.
      timer = setTimeout(() => {
        timer = null
        d.fire()
      }, Math.ceil(ms) + 5)
    },
    clear() {
      if (timer) clearTimeout(timer)
      timer = null
    },
  }
}
