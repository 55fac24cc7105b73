// SlotFreer: gives shared send slots back to the database, one statement at a time, retrying a lost one.
import type { Kysely } from 'kysely'
import { type Clock, monotonicNow } from '../clock.ts'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import { jitter } from './backoff.ts'
import type { HeldSlot } from './held-slot.ts'
import { freeSlots } from './send-slots.ts'
import type { StopGather } from './stop-gather.ts'

// A failed free is tried again after this long, doubling up to the most.
const RETRY_FIRST_MS = 50
const RETRY_MAX_MS = 2_000

/**
 * Slots to free while a statement runs go together in the next one. A free that fails (e.g. its
 * connection was cut) is tried again, fenced by token so a repeat is harmless, while the slot has
 * not expired on its own: one lost statement must not keep every send waiting for a TTL.
 */
export function createSlotFreer(o: {
  db: Kysely<Database>
  clock: Clock
  log: Logger
  ttlMs: number
  /** During a stop, each free waits for the slots still in use (stop-gather.ts). */
  gather?: StopGather
}) {
  const toFree: HeldSlot[] = []
  let freeing: Promise<void> | null = null
  let nap: AbortController | null = null
  let closed = false

  async function run() {
    let delay = RETRY_FIRST_MS
    while (toFree.length > 0) {
      await o.gather?.wait()
      const batch = toFree.splice(0)
      try {
        await freeSlots(o.db, batch)
        delay = RETRY_FIRST_MS
        continue
      } catch (err) {
        const retryAt = monotonicNow(o.clock) + delay
        const retry = closed ? [] : batch.filter((h) => h.sureAt + o.ttlMs > retryAt)
        // Said once when the retries begin and once if they end unfreed, not at every retry.
        if (retry.length === 0 || delay === RETRY_FIRST_MS)
          o.log.warn(
            retry.length > 0
              ? 'could not free send slots; retrying'
              : 'could not free send slots; they expire by themselves',
            { slots: batch.map((h) => h.slot), err },
          )
        if (retry.length === 0) continue
        toFree.unshift(...retry)
      }
      nap = new AbortController()
      await o.clock.sleep(jitter(delay), nap.signal)
      nap = null
      delay = Math.min(delay * 2, RETRY_MAX_MS)
    }
  }

  function start() {
    freeing ??= run().finally(() => {
      freeing = null
      // Slots given after the loop's last look found it still running and started none.
      if (toFree.length > 0) start()
    })
  }

  return {
    free(slots: HeldSlot[]) {
      if (slots.length === 0) return
      toFree.push(...slots)
      o.gather?.added()
      start()
    },
    /** Stops retrying: what is queued or given later is tried once more. Resolves when done. */
    async close() {
      closed = true
      nap?.abort()
      while (freeing) await freeing
    },
  }
}
