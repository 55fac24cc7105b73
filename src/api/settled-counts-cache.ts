// Finished-row counts for /metrics: counting them reads every row's index entry, so at most once per interval.
import { type Clock, waitAtMost } from '../clock.ts'
import type { SettledCounts } from '../outbox/stats.ts'

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
}): SettledCountsCache {
  let counts: SettledCounts | null = null
  let startedAt = Number.NEGATIVE_INFINITY
  let counting: Promise<void> | null = null

  function count(): Promise<void> {
    startedAt = d.clock.now()
    const run = d.count().then(
      (c) => {
        counts = c
      },
      () => {
        // Stale numbers would look current: none until a count succeeds (next interval).
        counts = null
      },
    )
    counting = run.finally(() => {
      counting = null
    })
    return counting
  }

  return {
    async get(waitMs) {
      const running = counting ?? (d.clock.now() - startedAt >= d.refreshMs ? count() : null)
      if (running) await waitAtMost(d.clock, running, waitMs).catch(() => {})
      return counts
    },
  }
}
