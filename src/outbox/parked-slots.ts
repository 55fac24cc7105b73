// ParkedSlots: given-back slots no send wants yet, kept parkMs for this worker's next send, then freed together.
import { type Clock, monotonicNow } from '../clock.ts'
import type { HeldSlot } from './held-slot.ts'

interface ParkedSlots {
  /** Keeps a slot for the next send; it is freed once parked parkMs (or past reuse) with the others due. */
  park(held: HeldSlot): void
  /** The slot parked last that is still reusable, or null; the stale ones met on the way are freed. */
  take(): HeldSlot | null
  /** The slots parked now. */
  held(): HeldSlot[]
  /** Stops the timed frees: what is parked stays until drain(). */
  stop(): void
  /** Empties the parking and returns its slots, for the caller to free. */
  drain(): HeldSlot[]
}

export function createParkedSlots(o: {
  clock: Clock
  parkMs: number
  /** Whether a slot may still go to a send. */
  reusable: (held: HeldSlot) => boolean
  free: (slots: HeldSlot[]) => void
}): ParkedSlots {
  const parked: { held: HeldSlot; at: number }[] = []
  let flushing: AbortController | null = null

  // Frees, in one statement, the slots parked for parkMs (and any past reuse); re-arms for the rest.
  function armFlush() {
    if (flushing || parked.length === 0) return
    const timer = new AbortController()
    flushing = timer
    void o.clock.sleep(o.parkMs, timer.signal).then(() => {
      if (timer.signal.aborted) return
      flushing = null
      const cutoff = monotonicNow(o.clock) - o.parkMs
      // Sorted in one pass, before the free: the clock moves on while it is issued, and a slot
      // judged twice could turn stale in between and land on neither side, held until its TTL.
      const stale: HeldSlot[] = []
      const kept = parked.filter((p) => {
        const keep = p.at > cutoff && o.reusable(p.held)
        if (!keep) stale.push(p.held)
        return keep
      })
      parked.splice(0, parked.length, ...kept)
      o.free(stale)
      armFlush()
    })
  }

  return {
    park(held) {
      parked.push({ held, at: monotonicNow(o.clock) })
      armFlush()
    },
    take() {
      const stale: HeldSlot[] = []
      let found: HeldSlot | null = null
      while (!found && parked.length > 0) {
        const { held } = parked.pop()!
        if (o.reusable(held)) found = held
        else stale.push(held)
      }
      o.free(stale)
      return found
    },
    held: () => parked.map((p) => p.held),
    stop() {
      flushing?.abort()
      flushing = null
    },
    drain: () => parked.splice(0).map((p) => p.held),
  }
}
