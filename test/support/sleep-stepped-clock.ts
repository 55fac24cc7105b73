// A test clock that moves only when slept on, each sleep passing in the next turn of the event loop.
import type { Clock } from '../../src/clock.ts'

/**
 * `c.mono` is the monotonic reading (a test may move it by hand); `now()` follows it. A sleep
 * yields one turn first, so a row parked by one flush is still parked when the flush behind it ends.
 * `sleepsAtLeastMs`: each sleep passes that long at least, as a loaded machine's oversleep, so that
 * a loop polling every few ms reaches a bound of seconds in a few statements, not hundreds.
 */
export function sleepSteppedClock(o: { sleepsAtLeastMs?: number } = {}): {
  c: { mono: number }
  clock: Clock
} {
  const c = { mono: 1_000 }
  return {
    c,
    clock: {
      now: () => 1_750_000_000_000 + c.mono,
      monotonic: () => c.mono,
      sleep: async (ms) => {
        await new Promise((r) => setImmediate(r))
        c.mono += Math.max(ms, o.sleepsAtLeastMs ?? 0)
      },
    },
  }
}
