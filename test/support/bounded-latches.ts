// Latches a test's held statements wait on: each wait bounded and named when it runs out, every one let go at the test's end.

/** One moment a test waits for: resolved once it happened. */
export interface BoundedLatch {
  resolve(): void
  /**
   * Resolves once it happened, or once the latches are let go (end): a statement held on it then
   * goes on, so a stop waiting for that statement is not held with it. Rejects naming it past
   * the bound, and so fails every `watch`ed wait of the test.
   */
  wait(): Promise<void>
}

export interface BoundedLatches {
  make(name: string): BoundedLatch
  /** `p`, or the first latch that ran out (named) should that come first. */
  watch<T>(p: Promise<T>): Promise<T>
  /** Lets every wait go (the test's end, a `finally` before its engines stop). */
  end(): void
}

/**
 * A latch a test's statement waits on that can never resolve (an order the test assumed and the
 * code does not keep) held the statement for good, the stop of the worker running it too, the
 * test ran into its timeout and the file's drop of the database after it (its pool waited for
 * the held connection): two 60 s failures naming neither the latch nor the order. Here it fails
 * within `boundMs`, by name.
 */
export function boundedLatches(boundMs: number): BoundedLatches {
  // The waits under way, each let go by `end`: a set, not a race with one promise of the end, so
  // a wait that ended holds nothing until the test's end (a test counting live promises).
  const waiting = new Set<() => void>()
  let ended = false
  const ranOut = Promise.withResolvers<never>()
  // Awaited by `watch` only: a run-out none watches is the statement's error alone.
  ranOut.promise.catch(() => undefined)
  return {
    make(name) {
      const happened = Promise.withResolvers<void>()
      return {
        resolve: () => happened.resolve(),
        wait: () =>
          new Promise<void>((resolve, reject) => {
            if (ended) return resolve()
            const done = () => {
              clearTimeout(timer)
              waiting.delete(done)
              resolve()
            }
            const timer = setTimeout(() => {
              waiting.delete(done)
              const err = new Error(`latch "${name}" not reached within ${boundMs} ms`)
              ranOut.reject(err)
              reject(err)
            }, boundMs)
            waiting.add(done)
            void happened.promise.then(done)
          }),
      }
    },
    watch: (p) => Promise.race([p, ranOut.promise]),
    end: () => {
      ended = true
      for (const done of [...waiting]) done()
    },
  }
}
