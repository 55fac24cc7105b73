// SlotKeeper: one worker's share of the shared send slots: taken in batches, passed from send to send, freed when idle.
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.ts'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import { jitter } from './backoff.ts'
import type { HeldSlot } from './held-slot.ts'
import { createParkedSlots } from './parked-slots.ts'
import type { SendPermit } from './send-gate.ts'
import { freeUnknownSlots, takeSlots } from './send-limits.ts'
import { createSlotFreer } from './slot-freer.ts'
import { createSlotRenewal } from './slot-renewal.ts'

export interface SlotKeeperOptions {
  db: Kysely<Database>
  clock: Clock
  log: Logger
  holder: string
  /** Slots in the database: concurrent provider requests across all workers. */
  max: number
  /**
   * A dead holder's slot frees itself after this long: longer than one request's deadline. A slot
   * in use is renewed every third of it, so a permit may outlast it (lookup, 401 retry, send).
   */
  ttlMs: number
  /** Upper bound of one wait between takes, so a slot another worker frees is noticed quickly. */
  maxWaitMs: number
  /** Past this age a slot is given back to the database instead of to the next send (TTL safety, fairness). */
  reuseMs: number
  /** How long a slot no send wants is kept for the next one before it is freed. */
  parkMs: number
}

/** How long close() waits for a take under way; a statement answering later frees its slots too. */
const CLOSE_WAIT_MS = 2_000

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
 * A slot stays in use as long as its permit (a lookup of two requests, a 401 refresh-and-retry and a
 * send may outlast the TTL): those held past a third of the TTL are renewed in one statement. The
 * TTL itself stays one request's worth, so a dead holder's slot blocks the others only that long.
 */
export function createSlotKeeper(o: SlotKeeperOptions) {
  const waiting: Waiter[] = []
  // The take loop while it runs: close() waits for a statement of it still under way.
  let taking: Promise<void> | null = null
  let nap: AbortController | null = null
  let closed = false
  // Slots handed to sends and not given back yet: renewed while their sends run.
  const inUse = new Set<HeldSlot>()
  // Clock time before a take that failed: it may have committed slots this worker never learned of.
  let lostTakeAt: number | null = null
  const reusable = (h: HeldSlot) => !closed && o.clock.now() - h.takenAt < o.reuseMs

  const freer = createSlotFreer(o)
  const free = (slots: HeldSlot[]) => freer.free(slots)
  const renewal = createSlotRenewal({ ...o, inUse, closed: () => closed })

  const parked = createParkedSlots({ clock: o.clock, parkMs: o.parkMs, reusable, free })

  function giveBack(held: HeldSlot) {
    if (!reusable(held)) return free([held])
    const next = waiting.shift()
    if (next) return next.grant(held)
    parked.park(held)
  }

  // One take at a time for all waiting sends; between fruitless takes a backoff that the last
  // waiter leaving cuts short (a handover serves a waiting send without waking it). After a failed
  // take, and before any other (so no take of ours can race it), what that take may have got is
  // freed: one lost answer must not keep every worker's sends waiting for a TTL.
  function takeForWaiting(): Promise<void> {
    taking ??= takeLoop().finally(() => {
      taking = null
      // A send that asked after the loop's last look found it still running and started none.
      if (waiting.length > 0 && !closed) void takeForWaiting()
    })
    return taking
  }

  async function takeLoop() {
    let delay = 20
    while ((waiting.length > 0 || lostTakeAt !== null) && !closed) {
      if (lostTakeAt !== null) {
        if (await freeLostTake()) delay = 20
        else {
          nap = new AbortController()
          await o.clock.sleep(jitter(delay), nap.signal)
          nap = null
          delay = Math.min(delay * 2, 2_000)
        }
        continue
      }
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
        lostTakeAt = takenAt
        continue
      }
      for (const g of got) giveBack({ ...g, takenAt, sureAt: takenAt })
      if (got.length > 0 || waiting.length === 0) {
        delay = 20
        continue
      }
      nap = new AbortController()
      await o.clock.sleep(jitter(delay), nap.signal)
      nap = null
      delay = Math.min(delay * 2, o.maxWaitMs)
    }
  }

  // True when done: freed, or expired by now anyway. A failure fails the sends waiting meanwhile.
  async function freeLostTake(): Promise<boolean> {
    if (lostTakeAt === null || o.clock.now() - lostTakeAt >= o.ttlMs) {
      lostTakeAt = null
      return true
    }
    const known = [...inUse, ...parked.held()].map((h) => h.token)
    try {
      await freeUnknownSlots(o.db, { holder: o.holder, known })
      lostTakeAt = null
      return true
    } catch (err) {
      for (const w of waiting.splice(0)) w.fail(err)
      return false
    }
  }

  const permitFor = (held: HeldSlot): SendPermit => {
    inUse.add(held)
    renewal.arm()
    return {
      release: async () => {
        inUse.delete(held)
        giveBack(held)
      },
    }
  }

  return {
    /** A slot for one send; null when `signal` aborted first. Throws when the database fails. */
    acquire(signal: AbortSignal): Promise<SendPermit | null> {
      if (signal.aborted || closed) return Promise.resolve(null)
      const reused = parked.take()
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
    /**
     * Frees every parked slot now and waits for the frees; later give-backs free at once. A take
     * still under way (a send that waited when the stop came) is waited for, up to CLOSE_WAIT_MS,
     * and what it took is freed with the rest, as is what a take whose answer was lost may have
     * got: the process exits once this resolves, and a slot freed after that would stay held, for
     * every worker, until its TTL.
     */
    async close() {
      closed = true
      parked.stop()
      nap?.abort()
      renewal.stop()
      for (const w of waiting.splice(0)) w.cancel()
      const gaveUp = new AbortController()
      const bounded = (p: Promise<unknown>) =>
        Promise.race([p, o.clock.sleep(CLOSE_WAIT_MS, gaveUp.signal)])
      if (taking) await bounded(taking)
      // A take whose answer was lost and whose give-back has not succeeded yet: one more try.
      if (lostTakeAt !== null) await bounded(freeLostTake())
      gaveUp.abort()
      free(parked.drain())
      await freer.close()
    },
  }
}
