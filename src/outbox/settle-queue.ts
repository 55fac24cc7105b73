// SettleQueue: batches settlements that finish close together into one settleLeases statement.
import { type Clock, monotonicNow } from '../clock.ts'
import { isRowRefusal } from '../db/sqlstate.ts'
import type { Logger } from '../log.ts'
import { nextBatch, type QueuedSettlement } from './settle-batch.ts'
import { BUSY_OUTCOME, type SettledRow, type SettleItem } from './settle-item.ts'
import { createSettleParking } from './settle-parking.ts'
import { isDatabaseUnavailable } from './statement-timeout.ts'
import type { StopGather } from './stop-gather.ts'
import { createUnrecordedOutcomes, type UnrecordedOutcomes } from './unrecorded-outcomes.ts'

export interface SettleQueue {
  /**
   * Resolves with the settled row, or null when the lease had been lost. A row another transaction
   * holds locked is asked again until it is settled (or lost, or a stop's deadline passes).
   */
  push(item: SettleItem): Promise<SettledRow | null>
  /** Resolves once everything pushed so far is written (or given up). */
  idle(): Promise<void>
  /**
   * A stop: a failed write is not retried past `deadline` (a monotonicNow reading, as every span
   * here: a wall clock stepped forward would give up at once a write that half a lease allows, its
   * lease then reclaimed as an interrupted send; stepped back, retry past Fly's kill_timeout), the
   * ones under way included. The process is going; its leases expire and are reclaimed, as after
   * giveUpAfterMs.
   */
  giveUpBy(deadline: number): void
}

/** A queue that can say, as a stop ends, which of its outcomes it has not written. */
export type RecordingQueue = SettleQueue & UnrecordedOutcomes

// A row another transaction held is asked again after this long, doubling up to the cap: a lock of
// our own (a heartbeat) lasts milliseconds, an application's open transaction may last minutes.
const BUSY_FIRST_MS = 20
const BUSY_MAX_MS = 2_000
// A write that failed is tried again after this long, doubling up to the cap (a batch in line, a
// refused row aside).
const RETRY_FIRST_MS = 200
const RETRY_MAX_MS = 5_000

export function createSettleQueue(d: {
  write: (items: SettleItem[]) => Promise<SettledRow[]>
  clock: Clock
  log: Logger
  /**
   * How long to keep retrying a write that failed for a reason of its own; past it, the lease
   * expires and reclaim takes over. One the database could not take (isDatabaseUnavailable) is
   * retried until it succeeds or a stop's deadline passes.
   */
  giveUpAfterMs: number
  /** During a stop, each batch waits for the outcomes still to come (stop-gather.ts). */
  gather?: StopGather
}): RecordingQueue {
  const queue: QueuedSettlement[] = []
  const tally = createUnrecordedOutcomes()
  const giveUp = (p: QueuedSettlement) => {
    tally.givenUp(p.item.id)
    p.done(null)
  }
  let flushing: Promise<void> | null = null
  let stopDeadline = Number.POSITIVE_INFINITY
  const parking = createSettleParking({
    clock: d.clock,
    deadline: () => stopDeadline,
    back: (p) => {
      queue.push(p)
      void flush()
    },
    giveUp,
  })
  const park = parking.park

  function retryAside(p: QueuedSettlement, err: unknown) {
    const now = monotonicNow(d.clock)
    p.refused ??= { since: now, times: 0 }
    const waitMs = Math.min(RETRY_FIRST_MS * 2 ** p.refused.times++, RETRY_MAX_MS)
    if (now + waitMs > Math.min(p.refused.since + d.giveUpAfterMs, stopDeadline)) {
      d.log.error('could not record a send outcome; its lease will expire and be reclaimed', {
        ids: [p.item.id],
        err,
      })
      giveUp(p)
      return
    }
    d.log.warn('recording a send outcome failed for a value; retrying it aside', {
      id: p.item.id,
      err,
    })
    park(p, waitMs)
  }

  async function writeWithRetry(batch: QueuedSettlement[]) {
    const started = monotonicNow(d.clock)
    let delay = RETRY_FIRST_MS
    for (;;) {
      try {
        const rows = await d.write(batch.map((p) => p.item))
        const byId = new Map(rows.map((r) => [r.id, r]))
        for (const p of batch) {
          const row = byId.get(p.item.id) ?? null
          if (row?.outcome === BUSY_OUTCOME)
            park(p, Math.min(BUSY_FIRST_MS * 2 ** p.busy++, BUSY_MAX_MS))
          else {
            if (row === null) tally.foundLost(p.item.id)
            p.done(row)
          }
        }
        return
      } catch (err) {
        // One row's value can fail the statement for all (an index entry past its size, a check):
        // given up together, every send beside it was reclaimed and sent again. Each alone, the
        // others are recorded and only that row's lease is left to expire.
        if (batch.length > 1 && isRowRefusal(err)) {
          d.log.warn('recording send outcomes failed for a value; recording each row alone', {
            count: batch.length,
            err,
          })
          for (const p of batch) await writeWithRetry([p])
          return
        }
        // Alone, the row is retried aside, as a busy one is: in line, every outcome queued behind
        // it waited out its retries (half a lease), the sends done but unrecorded.
        if (isRowRefusal(err)) {
          retryAside(batch[0]!, err)
          return
        }
        // While the database cannot take any write (an outage, a failover), nothing is gained by
        // giving up: a reclaim cannot take the rows meanwhile, and once it is back the write,
        // fenced by each lease's token, records them or finds them reclaimed. Given up at half a
        // lease, a send the provider had accepted was reclaimed as interrupted and sent again.
        const giveUpAt = isDatabaseUnavailable(err)
          ? stopDeadline
          : Math.min(started + d.giveUpAfterMs, stopDeadline)
        if (monotonicNow(d.clock) + delay > giveUpAt) {
          d.log.error('could not record send outcomes; their leases will expire and be reclaimed', {
            ids: batch.map((p) => p.item.id),
            err,
          })
          for (const p of batch) giveUp(p)
          return
        }
        d.log.warn('recording send outcomes failed; retrying', { count: batch.length, err })
        await d.clock.sleep(delay)
        delay = Math.min(delay * 2, RETRY_MAX_MS)
      }
    }
  }

  function flush(): Promise<void> {
    flushing ??= (async () => {
      // Let sends that finish in the same tick join this batch.
      await new Promise<void>((r) => setImmediate(r))
      while (queue.length > 0) {
        await d.gather?.wait()
        await writeWithRetry(nextBatch(queue))
      }
    })().finally(() => {
      flushing = null
      if (queue.length > 0) void flush()
    })
    return flushing
  }

  return {
    push(item) {
      return new Promise((done) => {
        const p: QueuedSettlement = {
          item,
          done: (row) => {
            tally.answered(p)
            done(row)
          },
          busy: 0,
        }
        tally.pushed(p)
        queue.push(p)
        d.gather?.added()
        void flush()
      })
    },
    async idle() {
      while (flushing || queue.length > 0 || parking.count() > 0) {
        if (flushing || queue.length > 0) await (flushing ?? flush())
        else await parking.oneBack()
      }
    },
    giveUpBy(deadline) {
      stopDeadline = Math.min(stopDeadline, deadline)
    },
    unrecorded: tally.unrecorded,
    stopBegan: tally.stopBegan,
  }
}
