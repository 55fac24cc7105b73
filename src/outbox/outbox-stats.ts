// Every count of the outbox: the rows in play (stats.ts liveStats) with the finished rows' counts (settled-counts.ts).
import type { Kysely } from 'kysely'
import type { Database, OutboxStatus } from '../db/schema.ts'
import { settledCounts } from './settled-counts.ts'
import { type LiveStats, liveStats } from './stats.ts'

/**
 * LiveStats's figures, as it reads them, but the rows in play (in `counts`, beside the settled
 * ones) and the NOTIFY queue's fill: a figure added to LiveStats reaches status too unless named here.
 */
export interface OutboxStats
  extends Omit<LiveStats, 'pending' | 'sending' | 'notificationQueueUsage'> {
  counts: Record<OutboxStatus, number>
}

/** Every count, exact (finished rows from indexes only: see settledCounts). */
export async function outboxStats(
  db: Kysely<Database>,
  scopeTenant: string | null,
): Promise<OutboxStats> {
  const {
    pending,
    sending,
    notificationQueueUsage: _queueUsage,
    ...live
  } = await liveStats(db, scopeTenant)
  const settled = await settledCounts(db, scopeTenant)
  return { counts: { pending, sending, ...settled }, ...live }
}
