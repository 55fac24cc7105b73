// Due timer: one timer for the earliest known future send_at, so a scheduled or retried row is claimed when due.
import type { Clock } from '../clock.ts'

export interface DueTimer {
  /** Wake in `ms`, unless a timer already wakes sooner (or the backstop poll comes first). */
  arm(ms: number): void
  clear(): void
}

export function createDueTimer(d: {
  clock: Clock
  /** The backstop poll's interval: a row due later is claimed by the poll anyway. */
  horizonMs: () => number
  stopped: () => boolean
  fire: () => void
}): DueTimer {
  let timer: ReturnType<typeof setTimeout> | null = null
  let at = 0
  return {
    arm(ms) {
      if (ms >= d.horizonMs() || d.stopped()) return
      const when = d.clock.now() + ms
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
