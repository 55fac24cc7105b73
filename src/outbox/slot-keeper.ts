// SlotKeeper: one worker's share of the shared send slots: taken in batches, passed from send to send, freed when idle.
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.ts'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import type { SendPermit } from './send-gate.ts'
import { takeSlots } from './send-limits.ts'
import { createSlotFreer, type HeldSlot, jitter } from './slot-freer.ts'

export interface SlotKeeperOptions {
  db: Kysely<Database>
  clock: Clock
  log: Logger
  holder: string
  /** Slots in the database: concurrent provider requests across all workers. */
  max: number
  /** A dead holder's slot frees itself after this long: longer than one request's deadline. */
  ttlMs: number
  /** Upper bound of one wait between takes, so a slot another worker frees is noticed quickly. */
  maxWaitMs: number
  /** Past this age a slot is given back to the database instead of to the next send (TTL safety, fairness). */
  reuseMs: number
  /** How long a slot no send wants is kept for the next one before it is freed. */
  parkMs: number
}

interface Waiter {
  grant: (held: HeldSlot) => void
  fail: (err: unknown) => void
  /** Closed while waiting: no slot. */
  cancel: () => void
}

/**
 * A busy worker would otherwise free and take a slot per send (two commits) and poll once per
 * waiting send (a connection each). Here a given-back slot goes to this worker's next waiting send
 * (first come, first served) or waits parkMs for one; and one statement at a time takes slots for
 * every send still waiting. Invariant: a slot is handed to a send only if taken less than reuseMs ago.
 */
export function createSlotKeeper(o: SlotKeeperOptions) {
  const parked: { held: HeldSlot; at: number }[] = []
  const waiting: Waiter[] = []
  let flushing: AbortController | null = null
  let taking = false
  let nap: AbortController | null = null
  let closed = false
  const reusable = (h: HeldSlot) => !closed && o.clock.now() - h.takenAt < o.reuseMs

  const freer = createSlotFreer(o)
  const free = (slots: HeldSlot[]) => freer.free(slots)

  // Frees, in one statement, the slots parked for parkMs (and any past reuse); re-arms for the rest.
  function armFlush() {
    if (flushing || parked.length === 0) return
    const timer = new AbortController()
    flushing = timer
    void o.clock.sleep(o.parkMs, timer.signal).then(() => {
      if (timer.signal.aborted) return
      flushing = null
      const cutoff = o.clock.now() - o.parkMs
      const stale = (p: (typeof parked)[number]) => p.at <= cutoff || !reusable(p.held)
      free(parked.filter(stale).map((p) => p.held))
      parked.splice(0, parked.length, ...parked.filter((p) => !stale(p)))
      armFlush()
    })
  }

  function takeParked(): HeldSlot | null {
    const stale: HeldSlot[] = []
    let found: HeldSlot | null = null
    while (!found && parked.length > 0) {
      const { held } = parked.pop()!
      if (reusable(held)) found = held
      else stale.push(held)
    }
    free(stale)
    return found
  }

  function giveBack(held: HeldSlot) {
    if (!reusable(held)) return free([held])
    const next = waiting.shift()
    if (next) return next.grant(held)
    parked.push({ held, at: o.clock.now() })
    armFlush()
  }

  // One take at a time for all waiting sends; between fruitless takes a backoff that a handover
  // or the last waiter leaving cuts short.
  async function takeForWaiting() {
    if (taking) return
    taking = true
    let delay = 20
    try {
      while (waiting.length > 0 && !closed) {
        const takenAt = o.clock.now()
        let got: { slot: number; token: string }[]
        try {
          got = await takeSlots(o.db, {
            want: waiting.length,
            max: o.max,
            holder: o.holder,
            ttlMs: o.ttlMs,
          })
        } catch (err) {
          for (const w of waiting.splice(0)) w.fail(err)
          return
        }
        for (const g of got) giveBack({ ...g, takenAt })
        if (got.length > 0 || waiting.length === 0) {
          delay = 20
          continue
        }
        nap = new AbortController()
        await o.clock.sleep(jitter(delay), nap.signal)
        nap = null
        delay = Math.min(delay * 2, o.maxWaitMs)
      }
    } finally {
      taking = false
    }
  }

  const permitFor = (held: HeldSlot): SendPermit => ({ release: async () => giveBack(held) })

  return {
    /** A slot for one send; null when `signal` aborted first. Throws when the database fails. */
    acquire(signal: AbortSignal): Promise<SendPermit | null> {
      if (signal.aborted || closed) return Promise.resolve(null)
      const reused = takeParked()
      if (reused) return Promise.resolve(permitFor(reused))
      return new Promise((resolve, reject) => {
        const leave = () => {
          const at = waiting.indexOf(w)
          if (at >= 0) waiting.splice(at, 1)
          if (waiting.length === 0) nap?.abort()
          resolve(null)
        }
        const w: Waiter = {
          grant: (held) => {
            signal.removeEventListener('abort', leave)
            resolve(permitFor(held))
          },
          fail: (err) => {
            signal.removeEventListener('abort', leave)
            reject(err)
          },
          cancel: () => {
            signal.removeEventListener('abort', leave)
            resolve(null)
          },
        }
        signal.addEventListener('abort', leave, { once: true })
        waiting.push(w)
        void takeForWaiting()
      })
    },
    /** Frees every parked slot now and waits for the frees; later give-backs free at once. */
    async close() {
      closed = true
      flushing?.abort()
      flushing = null
      nap?.abort()
      for (const w of waiting.splice(0)) w.cancel()
      free(parked.splice(0).map((p) => p.held))
      await freer.close()
    },
  }
}
