// A stop's gathering: a batch written while the worker stops waits for the items still to come, briefly, so a slow database answers one statement, not one per send that ended.
import { type Clock, monotonicNow } from '../clock.ts'

/**
 * How long a batch written during a stop waits at most for the items still to come: each send
 * ends with its own, within a few hundred ms of the others when the signal finds them in flight.
 * Written at once, the first went alone and the rest in series behind it: with every answer 2 s
 * late, two round trips where one does. The stop's end is the last item's write either way.
 */
export const STOP_GATHER_MS = 1_000

/**
 * A batch whose wait saw no item come for this long is written: the sends answered together have
 * all reported, and one that hangs (to the grace) must not hold the others' records back, each
 * sent again should a kill come meanwhile.
 */
export const STOP_GATHER_QUIET_MS = 200

export interface StopGather {
  /** The stop began: from now on a batch waits while `more()` says items are still to come. */
  began(more: () => boolean): void
  /** An item was queued: a wait whose items have all come ends, the others wait anew for the next. */
  added(): void
  /**
   * Resolves when a batch may be written: at once before a stop, else when no item is to come,
   * none came for STOP_GATHER_QUIET_MS, or STOP_GATHER_MS passed.
   */
  wait(): Promise<void>
}

export function createStopGather(clock: Clock): StopGather {
  let more: (() => boolean) | null = null
  const waiting = new Set<() => void>()
  return {
    began(m) {
      more = m
    },
    added() {
      for (const came of waiting) came()
      waiting.clear()
    },
    async wait() {
      const bound = monotonicNow(clock) + STOP_GATHER_MS
      while (more?.()) {
        const left = bound - monotonicNow(clock)
        if (left <= 0) return
        const cut = new AbortController()
        const { promise: came, resolve } = Promise.withResolvers<boolean>()
        const one = () => resolve(true)
        waiting.add(one)
        const quiet = clock
          .sleep(Math.min(STOP_GATHER_QUIET_MS, left), cut.signal)
          // A timer can fire before the loop reads answers that came within it (the process paused
          // under load): one turn for them, else one batch splits in two statements in series.
          .then(() => new Promise<boolean>((r) => setImmediate(() => r(false))))
        const arrived = await Promise.race([came, quiet])
        waiting.delete(one)
        cut.abort()
        if (!arrived) return
      }
    },
  }
}
