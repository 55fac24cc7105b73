// The statements a worker begins beside its claims and deliveries, awaited by no caller: kept so that its stop waits for each.
/**
 * A stop that resolved with one still running left it to a database the caller may empty or drop
 * next (a test's TRUNCATE deadlocked on such a leftover). Invariant: a promise tracked never
 * rejects (its beginner catches what it throws), so settled() waits for every one to end.
 */
export interface SideStatements {
  /** Tracks `p` until it ends; returns it. */
  track<T>(p: Promise<T>): Promise<T>
  /** Resolves once none is running, including any begun while it waited. */
  settled(): Promise<void>
}

export function createSideStatements(): SideStatements {
  const running = new Set<Promise<unknown>>()
  return {
    track(p) {
      running.add(p)
      void p.finally(() => running.delete(p)).catch(() => {})
      return p
    },
    async settled() {
      while (running.size > 0) await Promise.allSettled([...running])
    },
  }
}
