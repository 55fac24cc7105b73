// A test clock on which no wait of `fromMs` or longer ends until released: bounds such as a stop's gather and its grace never pass while a test watches.
import { type Clock, systemClock } from '../../src/clock.ts'

/**
 * Shorter waits, and every wait once `release()` was called, are the system clock's; a held wait
 * also ends when its signal aborts. What a test sees happen meanwhile came from an event, not from
 * a bound running out.
 */
export function heldLongSleepsClock(fromMs: number): { clock: Clock; release(): void } {
  const released = Promise.withResolvers<void>()
  let free = false
  return {
    clock: {
      now: systemClock.now,
      monotonic: systemClock.monotonic,
      async sleep(ms, signal) {
        if (ms < fromMs || free) return systemClock.sleep(ms, signal)
        if (signal?.aborted) return
        const aborted = Promise.withResolvers<void>()
        const onAbort = () => aborted.resolve()
        signal?.addEventListener('abort', onAbort, { once: true })
        await Promise.race([released.promise, aborted.promise])
        signal?.removeEventListener('abort', onAbort)
      },
    },
    release() {
      free = true
      released.resolve()
    },
  }
}
