// SlotKeeper: one worker's share of the shared send slots: taken in batches, passed from send to send, freed when idle.
import type { Kysely } from 'kysely'
import { type Clock, monotonicNow } from '../clock.ts'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import type { HeldSlot } from './held-slot.ts'
import { createParkedSlots } from './parked-slots.ts'
import type { SendPermit } from './send-gate.ts'
import { createSlotFreer } from './slot-freer.ts'
import { createSlotRenewal } from './slot-renewal.ts'
import { createSlotTaker } from './slot-taker.ts'
import { createStopGather } from './stop-gather.ts'

interface SlotKeeperOptions {
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
  /**
   * The note of this worker's liveness lock while its LISTEN session holds it (null: none): its
   * takes write it, so the slots they take are taken again once that session ends (holder-lock.ts).
   */
  lockNote?: () => string | null
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
  let closed = false
  // Slots handed to sends and not given back yet: renewed while their sends run.
  const inUse = new Set<HeldSlot>()
  const reusable = (h: HeldSlot) => !closed && monotonicNow(o.clock) - h.takenAt < o.reuseMs

  // During a stop, a free waits for the slots of the sends still running (stop-gather.ts).
  const gather = createStopGather(o.clock)
  const freer = createSlotFreer({ ...o, gather })
  const free = (slots: HeldSlot[]) => freer.free(slots)
  const renewal = createSlotRenewal({ ...o, inUse, closed: () => closed })

  const parked = createParkedSlots({ clock: o.clock, parkMs: o.parkMs, reusable, free })

  function giveBack(held: HeldSlot) {
    if (!reusable(held)) return free([held])
    const next = waiting.shift()
    if (next) return next.grant(held)
    parked.park(held)
  }

  const taker = createSlotTaker({
    ...o,
    waiting,
    giveBack,
    known: () => [...inUse, ...parked.held()].map((h) => h.token),
    closed: () => closed,
  })

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
          if (waiting.length === 0) taker.cutShort()
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
        void taker.take()
      })
    },
    /** The worker's stop began: a free waits, briefly, while sends still hold slots. */
    stopBegan() {
      gather.began(() => inUse.size > 0)
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
      taker.cutShort()
      renewal.stop()
      for (const w of waiting.splice(0)) w.cancel()
      const gaveUp = new AbortController()
      const bounded = (p: Promise<unknown>) =>
        Promise.race([p, o.clock.sleep(CLOSE_WAIT_MS, gaveUp.signal)])
      await taker.finish(bounded)
      gaveUp.abort()
      free(parked.drain())
      await freer.close()
    },
  }
}
