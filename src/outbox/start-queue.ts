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
 * every check in it (the rows are then released, not sent). Invariant: a statement names each row
 * once, so its result (by id) speaks for the one lease that asked about it.
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
      // Its result names rows by id alone: an ask naming a row already in this statement (a stale
      // lease and the claim that followed its reclaim) waits for the next one, or the stale lease
      // would read the live one's start as its own and both would send.
      const ids = new Set<string>()
      let rows = 0
      let take = 0
      while (take < queue.length) {
        const ask = queue[take]!.leases
        if (take > 0 && (rows + ask.length > MAX_BATCH || ask.some((l) => ids.has(l.id)))) break
        for (const l of ask) ids.add(l.id)
        rows += ask.length
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
