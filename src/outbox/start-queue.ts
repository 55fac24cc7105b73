// StartQueue: last checks that come close together share one startSends statement.
import type { StartResult } from './start-send.ts'

type Leases = readonly { id: string; token: string; mailbox?: string }[]
export type StartQueue = (leases: Leases) => Promise<StartResult>

// Rows per statement, as for claims and settlements.
const MAX_BATCH = 500

/**
 * The first check goes out at once; checks asked for while a statement runs go together in the
 * next one. Each row is still checked by a statement that begins after it asked and ends before
 * its send starts: a cancel committed before the ask is always seen. A failed statement fails
 * every check in it (the rows are then released, not sent).
 */
export function createStartQueue(startSends: StartQueue): StartQueue {
  const queue: {
    leases: Leases
    resolve: (r: StartResult) => void
    reject: (e: unknown) => void
  }[] = []
  let running = false

  async function drain() {
    running = true
    while (queue.length > 0) {
      let rows = 0
      let take = 0
      while (
        take < queue.length &&
        (take === 0 || rows + queue[take]!.leases.length <= MAX_BATCH)
      ) {
        rows += queue[take]!.leases.length
        take += 1
      }
      const batch = queue.splice(0, take)
      try {
        const result = await startSends(batch.flatMap((b) => b.leases))
        for (const b of batch) b.resolve(result)
      } catch (err) {
        for (const b of batch) b.reject(err)
      }
    }
    running = false
  }

  return (leases) =>
    new Promise((resolve, reject) => {
      queue.push({ leases, resolve, reject })
      if (!running) void drain()
    })
}
