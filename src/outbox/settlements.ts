// Settlements: routes each outcome to its statement (markSent or settleLeases) through batching queues.
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.ts'
import type { WorkerConfig } from '../config.ts'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import { markSent } from './mark-sent.ts'
import { settleLeases } from './settle.ts'
import { BUSY_OUTCOME, type SettledRow, type SettleItem } from './settle-item.ts'
import { createSettleQueue, type SettleQueue } from './settle-queue.ts'
import { createStopGather } from './stop-gather.ts'
import type { UnrecordedIds } from './unrecorded-ids.ts'

export interface Settlements extends SettleQueue {
  /**
   * Ids of sends the provider accepted whose outcome is not recorded (given up, still being written,
   * or found lost since stopBegan()): each may be sent again once its row is reclaimed.
   */
  unrecordedSends(): UnrecordedIds
  /**
   * From now on, an accepted send whose lease is found lost counts among unrecordedSends
   * (unrecorded-outcomes.ts stopBegan), and each batch waits while `more()` says outcomes
   * are still to come (stop-gather.ts).
   */
  stopBegan(more: () => boolean): void
}

/**
 * Successful sends (nearly every row) take the lean statement; the rest need their verdict. Two
 * queues, so a failing write of one kind is retried alone and never re-applies the other.
 */
export function createSettlements(d: {
  db: Kysely<Database>
  workerId: string
  config: Pick<WorkerConfig, 'leaseSeconds' | 'maxAttempts' | 'throttleDeadlineSeconds'>
  /** SettleParams.lookupPastExpirySeconds: this worker's lookup grace plus the limit past it. */
  lookupPastExpirySeconds?: number
  clock: Clock
  log: Logger
  /** A write recorded a row sent (last-send.ts: the registry beat notes when). */
  sendRecorded?: () => void
}): Settlements {
  // One for both queues: an outcome of either kind may be the last one to come.
  const gather = createStopGather(d.clock)
  const queue = (write: (items: SettleItem[]) => Promise<SettledRow[]>) =>
    createSettleQueue({
      write,
      clock: d.clock,
      log: d.log,
      // Past half the lease, the lease expires first and reclaim takes over.
      giveUpAfterMs: (d.config.leaseSeconds * 1000) / 2,
      gather,
    })
  const sent = queue(async (items) => {
    const { sent, busy } = await markSent(d.db, items, d.workerId)
    if (sent.size > 0) d.sendRecorded?.()
    return items.flatMap((i) =>
      sent.has(i.id)
        ? [{ id: i.id, status: 'sent', outcome: 'sent', code: null }]
        : busy.has(i.id)
          ? [{ id: i.id, status: 'sending', outcome: BUSY_OUTCOME, code: null }]
          : [],
    )
  })
  const others = queue(async (items) => {
    const rows = await settleLeases(d.db, items, {
      workerId: d.workerId,
      defaultMaxAttempts: d.config.maxAttempts,
      throttleDeadlineSeconds: d.config.throttleDeadlineSeconds,
      ...(d.lookupPastExpirySeconds !== undefined && {
        lookupPastExpirySeconds: d.lookupPastExpirySeconds,
      }),
    })
    if (rows.some((r) => r.status === 'sent')) d.sendRecorded?.()
    return rows
  })
  return {
    // A lease that only looks a send up gives its claim's count back, which markSent does not; nor does
    // it record a sent row's history text (a found send whose cancel came after it).
    push: (item) =>
      (item.settlement.kind === 'sent' && !item.uncounted && item.settlement.message === undefined
        ? sent
        : others
      ).push(item),
    idle: async () => {
      await Promise.all([sent.idle(), others.idle()])
    },
    giveUpBy: (deadline) => {
      sent.giveUpBy(deadline)
      others.giveUpBy(deadline)
    },
    unrecordedSends: () => sent.unrecorded(),
    stopBegan: (more) => {
      sent.stopBegan()
      gather.began(more)
    },
  }
}
