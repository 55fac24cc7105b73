// The table's state read at a scrape, per database: the rows in play at each scrape, the finished ones recounted now and then, into outbox_rows and its companions.
import type { Kysely } from 'kysely'
import { type Clock, monotonicNow } from '../clock.ts'
import { type Database, OUTBOX_STATUSES } from '../db/schema.ts'
import { QUERY_CANCELED_SQLSTATE } from '../db/sqlstate.ts'
import type { StatementRoute } from '../db/statement-route.ts'
import type { HealthSource } from '../outbox/health.ts'
import { settledCounts } from '../outbox/settled-counts.ts'
import { withStatementTimeout } from '../outbox/statement-timeout.ts'
import { liveStats } from '../outbox/stats.ts'
import { createLiveStatsReader, type LiveStatsReader } from './live-stats-reader.ts'
import type { createMetricFamilies } from './metric-families.ts'
import { createSettledCountsCache, type SettledCountsCache } from './settled-counts-cache.ts'

const SETTLED_REFRESH_MS = 5 * 60_000
// A count of finished rows runs in the background, so it may take longer than a scrape.
const SETTLED_COUNT_TIMEOUT_MS = 60_000

export interface DatabaseScrape {
  /** Reads one database (by name) into the table's families, within the scrape's bound. */
  scrape(name: string): Promise<void>
  /** An engine event of that database: its live numbers may have changed (live-stats-reader.ts). */
  changed(name: string): void
}

export function createDatabaseScrape(
  deps: {
    databases: ReadonlyArray<{
      name: string
      db: Kysely<Database>
      statements: Pick<StatementRoute, 'db'>
    }>
    health: HealthSource
    settledRefreshMs?: number
    quietReuseMs?: number
  },
  metric: ReturnType<typeof createMetricFamilies>,
  timeoutMs: number,
  clock: Clock,
): DatabaseScrape {
  const settled = new Map<string, SettledCountsCache>(
    deps.databases.map((d) => [
      d.name,
      createSettledCountsCache({
        count: () =>
          withStatementTimeout(d.db, SETTLED_COUNT_TIMEOUT_MS, (trx) => settledCounts(trx, null)),
        clock,
        refreshMs: deps.settledRefreshMs ?? SETTLED_REFRESH_MS,
        retrySoon: (error) => !timedOut(error),
      }),
    ]),
  )

  // Per scrape, one statement and only what is cheap: the rows in play through their partial
  // indexes and the NOTIFY queue's fill. (A transaction with a statement_timeout was five
  // statements per scrape: with the readiness probe it ran, 0.5 statements/s at Fly's 15 s.)
  const live = new Map<string, LiveStatsReader>(
    deps.databases.map((d) => [
      d.name,
      createLiveStatsReader({
        read: () => liveStats(d.statements.db, null),
        clock,
        reuseMs: deps.quietReuseMs ?? 0,
        listening: () =>
          deps.health.listenerStates().find((h) => h.name === d.name)?.listener === 'listening',
      }),
    ]),
  )

  // The live statement first, then (when due) the count of finished rows in what is left of the
  // bound: one after the other, a scrape needs one connection, which an idle pool keeps open.
  async function scrapeDatabase(name: string) {
    // Monotonic: a wall clock stepped during the scrape must neither spend its bound nor stretch it.
    const startedAt = monotonicNow(clock)
    try {
      const now = await live.get(name)!.get(timeoutMs)
      metric.rows.set({ db: name, status: 'pending' }, now.pending)
      metric.rows.set({ db: name, status: 'sending' }, now.sending)
      metric.oldestPending.set({ db: name }, now.oldestPendingAgeSeconds ?? 0)
      metric.mailboxesPaused.set({ db: name }, now.pausedMailboxes ?? 0)
      metric.mailboxesPausedRefused.set({ db: name }, now.pausedMailboxesRefused ?? 0)
      metric.refusedMailboxPending.set({ db: name }, now.refusedMailboxPending ?? 0)
      metric.heldBackPending.set({ db: name }, now.heldBackPending)
      metric.pastExpiryPending.set({ db: name }, now.pastExpiryPending)
      metric.queueUsage.set({ db: name }, now.notificationQueueUsage)
      metric.databaseUp.set({ db: name }, 1)
    } catch {
      // Stale numbers would look healthy: drop them and say the scrape failed.
      for (const s of OUTBOX_STATUSES) metric.rows.remove({ db: name, status: s })
      metric.oldestPending.remove({ db: name })
      metric.mailboxesPaused.remove({ db: name })
      metric.mailboxesPausedRefused.remove({ db: name })
      metric.refusedMailboxPending.remove({ db: name })
      metric.heldBackPending.remove({ db: name })
      metric.pastExpiryPending.remove({ db: name })
      metric.queueUsage.remove({ db: name })
      metric.databaseUp.set({ db: name }, 0)
    }
    const counts = await settled
      .get(name)!
      .get(Math.max(0, timeoutMs - (monotonicNow(clock) - startedAt)))
    for (const status of ['sent', 'failed', 'cancelled'] as const) {
      if (counts) metric.rows.set({ db: name, status }, counts[status])
      else metric.rows.remove({ db: name, status })
    }
  }
  return { scrape: scrapeDatabase, changed: (name) => live.get(name)?.changed() }
}

/** The statement ran out of its statement_timeout (57014), itself or as withStatementTimeout's cause. */
function timedOut(error: unknown): boolean {
  const e = error as { code?: unknown; cause?: { code?: unknown } } | null
  return e?.code === QUERY_CANCELED_SQLSTATE || e?.cause?.code === QUERY_CANCELED_SQLSTATE
}
