// Settlements parked aside (a row another transaction holds, a value refused): each returns to its queue after its wait, or is given up once a stop's deadline has passed.
import { type Clock, monotonicNow } from '../clock.ts'
import type { QueuedSettlement } from './settle-batch.ts'

export function createSettleParking(d: {
  clock: Clock
  /** The stop's deadline (a monotonicNow reading); +Infinity before a stop. */
  deadline: () => number
  /** Its wait is over: back in the queue. */
  back: (p: QueuedSettlement) => void
  /** The stop's deadline passed during its wait. */
  giveUp: (p: QueuedSettlement) => void
}) {
  // Rows set aside while another transaction holds them; each returns to the queue after its wait.
  let parked = 0
  let parkedBack: (() => void)[] = []
  return {
    /**
     * The row is still this worker's lease (the heartbeat extends it; a reclaim skips a locked row):
     * it is asked again once the lock may have gone, without holding up the rows queued behind it,
     * until it is recorded, found lost, or a stop's deadline passes (then, unrecorded, its lease
     * expires and is reclaimed).
     */
    park(p: QueuedSettlement, waitMs: number) {
      parked += 1
      const leftMs = d.deadline() - monotonicNow(d.clock)
      void d.clock.sleep(Math.max(0, Math.min(waitMs, leftMs))).then(() => {
        parked -= 1
        if (monotonicNow(d.clock) >= d.deadline()) d.giveUp(p)
        else d.back(p)
        const back = parkedBack
        parkedBack = []
        for (const f of back) f()
      })
    },
    count: () => parked,
    /** Resolves once a parked settlement is back in the queue or given up. */
    oneBack: () => new Promise<void>((back) => parkedBack.push(back)),
  }
}
