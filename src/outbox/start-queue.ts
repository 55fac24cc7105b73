// StartQueue: last checks that come close together share one startSends statement, and hear when it is slow to answer.
import type { Clock } from '../clock.ts'
import type { StartResult } from './start-send.ts'

type Leases = readonly { id: string; token: string; mailbox?: string }[]
/**
 * `slow`: called at most once, when the statement that checks these leases, or the one it waits
 * behind, has run longer than the queue's `slowMs` (its database slow to answer).
 */
export type StartQueue = (leases: Leases, slow?: () => void) => Promise<StartResult>

// Rows per statement, as for claims and settlements.
const MAX_BATCH = 500

interface Ask {
  leases: Leases
  slow: (() => void) | undefined
  resolve: (r: StartResult) => void
  reject: (e: unknown) => void
}

/**
 * The first check goes out at once; checks asked for while a statement runs go together in the
 * next one. Each row is still checked by a statement that begins after it asked and ends before
 * its send starts: a cancel committed before the ask is always seen. A failed statement fails
 * every check in it (the rows are then released, not sent). Invariant: a statement names each row
 * once, so its result (by id) speaks for the one lease that asked about it.
 * With `watch`, one timer per statement (not per row: it is on every send's way) tells the asks in
 * it and behind it that it is slow, once it has run `slowMs`; so is an ask made while it runs on.
 */
export function createStartQueue(
  startSends: (leases: Leases) => Promise<StartResult>,
  watch?: { clock: Clock; slowMs: number },
): StartQueue {
  const queue: Ask[] = []
  let running = false
  // The statement under way has run past slowMs: an ask queued behind it is told at once.
  let slowNow = false
  const tell = (a: Ask) => {
    const slow = a.slow
    a.slow = undefined
    slow?.()
  }

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
      const statement = startSends(batch.flatMap((b) => b.leases))
      const timer = watch ? new AbortController() : null
      let answered = false
      if (watch && timer) {
        void watch.clock.sleep(watch.slowMs, timer.signal).then(() => {
          if (answered) return
          slowNow = true
          for (const b of batch) tell(b)
          for (const b of queue) tell(b)
        })
      }
      try {
        const result = await statement
        for (const b of batch) b.resolve(result)
      } catch (err) {
        for (const b of batch) b.reject(err)
      } finally {
        answered = true
        slowNow = false
        // Once the answers' continuations have run (their sends under way): the abort's dispatch
        // (some 20 µs) is no hop on their way to the send.
        if (timer) setImmediate(() => timer.abort())
      }
    }
    running = false
  }

  return (leases, slow) =>
    new Promise((resolve, reject) => {
      const ask: Ask = { leases, slow, resolve, reject }
      queue.push(ask)
      if (slowNow) tell(ask)
      if (!running) void drain()
    })
}
