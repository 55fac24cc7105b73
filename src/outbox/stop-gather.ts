// A stop's gathering: a batch written while the worker stops waits for the items still to come, briefly, so a slow database answers one statement, not one per send that ended.
import type { Clock } from '../clock.ts'

/**
 * How long a batch written during a stop waits at most for the items still to come: each send
 * ends with its own, within a few hundred ms of the others when the signal finds them in flight.
 * Written at once, the first went alone and the rest in series behind it: with every answer 2 s
 * late, two round trips where one does. The stop's end is the last item's write either way, and a
 * send that hangs to the grace keeps the others' items waiting only this long, not to the grace.
 */
export const STOP_GATHER_MS = 1_000

export interface StopGather {
  /** The stop began: from now on a batch waits while `more()` says items are still to come. */
  began(more: () => boolean): void
  /** An item was queued: a wait whose items have all come ends. */
  added(): void
  /** Resolves when a batch may be written: at once before a stop, else when no item is to come or STOP_GATHER_MS passed. */
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
      if (more?.()) return
      for (const done of waiting) done()
      waiting.clear()
    },
    async wait() {
      if (!more?.()) return
      const cut = new AbortController()
      const { promise, resolve } = Promise.withResolvers<void>()
      waiting.add(resolve)
      await Promise.race([promise, clock.sleep(STOP_GATHER_MS, cut.signal)])
      waiting.delete(resolve)
      cut.abort()
    },
  }
}
