// Clock port: wall time, monotonic readings and sleeping for in-process concerns (timers, token expiry, backoff jitter).
// Leases, retries and schedules never use it: they use the database's now().

export interface Clock {
  now(): number
  /**
   * Milliseconds on a clock that only moves forward at a steady rate (no NTP step, no manual
   * change): for durations that a step of the wall clock must not stretch, as how long a lease is
   * surely still held. Absent: now() serves (a test's clock that moves only when told).
   */
  monotonic?(): number
  sleep(ms: number, signal?: AbortSignal): Promise<void>
}

/** A reading of `clock`'s monotonic clock (its now() where it has none), for elapsed time. */
export function monotonicNow(clock: Pick<Clock, 'now' | 'monotonic'>): number {
  return clock.monotonic?.() ?? clock.now()
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve) => {
      if (signal?.aborted) return resolve()
      const timer = setTimeout(done, Math.max(0, ms))
      function done() {
        clearTimeout(timer)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      signal?.addEventListener('abort', done, { once: true })
    }),
}

/**
 * Settles as `p` does, or rejects once `ms` have passed on `clock`. Nothing is cancelled: `p` runs
 * on, the caller only stops waiting for it.
 */
export async function waitAtMost<T>(clock: Clock, p: Promise<T>, ms: number): Promise<T> {
  const gaveUp = new AbortController()
  try {
    return await Promise.race([
      p,
      clock.sleep(ms, gaveUp.signal).then(() => {
        if (!gaveUp.signal.aborted) throw new Error(`no answer within ${ms} ms`)
        return p
      }),
    ])
  } finally {
    gaveUp.abort()
  }
}

/**
 * Settles as `p` does, or resolves 'aborted' once `signal` aborts (at once if it has): the caller
 * stops waiting, `p` runs on, and its later failure is no unhandled rejection (it is subscribed).
 */
export function untilAborted<T>(p: Promise<T>, signal?: AbortSignal): Promise<T | 'aborted'> {
  if (!signal) return p
  if (signal.aborted) {
    p.catch(() => {})
    return Promise.resolve('aborted')
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve('aborted')
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}
