// Finished-row counts for /metrics: counting them reads every row's index entry, so at most once per interval.
import { type Clock, monotonicNow, waitAtMost } from '../clock.ts'
import type { SettledCounts } from '../outbox/settled-counts.ts'

export interface SettledCountsCache {
  /**
   * The latest counts, or null when the last count failed (or none has finished yet). Starts a
   * count when the last one began `refreshMs` ago or more, and waits for it at most `waitMs`: a
   * count that takes longer finishes in the background and the previous counts are returned.
   */
  get(waitMs: number): Promise<SettledCounts | null>
}

export function createSettledCountsCache(d: {
  /** One count of the finished rows (settledCounts under its own statement_timeout). */
  count: () => Promise<SettledCounts>
  clock: Clock
  refreshMs: number
  /**
   * Whether a count that failed so is tried again at the next `get` rather than an interval later:
   * one that failed because the database was away (default: none).
   */
  retrySoon?: (error: unknown) => boolean
}): SettledCountsCache {
  let counts: SettledCounts | null = null
  // A monotonic reading: a wall clock stepped back an hour would keep the counts that hour longer.
  let startedAt = Number.NEGATIVE_INFINITY
  let counting: Promise<void> | null = null

  function count(): Promise<void> {
    startedAt = monotonicNow(d.clock)
    const run = d.count().then(
      (c) => {
        counts = c
      },
      (error: unknown) => {
        // Stale numbers would look current: none until a count succeeds. A count that timed out
        // would time out again: the next one waits for the interval. One the database missed (an
        // outage) goes again at the next scrape, so the numbers come back with the database.
        counts = null
        if (d.retrySoon?.(error)) startedAt = Number.NEGATIVE_INFINITY
      },
    )
    counting = run.finally(() => {
      counting = null
    })
    return counting
  }

  return {
    async get(waitMs) {
      const running =
        counting ?? (monotonicNow(d.clock) - startedAt >= d.refreshMs ? count() : null)
      if (running) await waitAtMost(d.clock, running, waitMs).catch(() => {})
      return counts
    },
  }
}
