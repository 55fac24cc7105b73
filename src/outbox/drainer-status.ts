// What a drainer says of its loop (running, last turn, in flight, failing claims), and the pulse that times the loop's silence.
import { type Clock, monotonicNow } from '../clock.ts'
import type { ClaimsFailing } from './claim-failures.ts'

export interface DrainerStatus {
  running: boolean
  /** When the loop last turned, on the wall clock: shown, never compared. */
  lastLoopAt: number | null
  /** How long ago the loop last turned, on the monotonic clock (a wall clock's step is no silence). */
  loopSilentMs: number | null
  inFlight: number
  /** Since when every claim has failed (null after one succeeded), the last failure and its SQLSTATE. */
  claimsFailing: ClaimsFailing | null
}

/** When the loop last turned: on the wall clock to show, on the monotonic clock to age. */
export function createLoopPulse(clock: Clock) {
  let lastAt: number | null = null
  let lastMono: number | null = null
  return {
    turned() {
      lastAt = clock.now()
      lastMono = monotonicNow(clock)
    },
    lastAt: () => lastAt,
    silentMs: () => (lastMono === null ? null : monotonicNow(clock) - lastMono),
  }
}
