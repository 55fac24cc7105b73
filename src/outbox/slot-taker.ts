// SlotTaker: takes shared send slots for every waiting send, one statement at a time, and frees what a lost take got.
import type { Kysely } from 'kysely'
import { type Clock, monotonicNow } from '../clock.ts'
import type { Database } from '../db/schema.ts'
import { jitter } from './backoff.ts'
import type { HeldSlot } from './held-slot.ts'
import { freeUnknownSlots, noteSlots, takeSlots } from './send-slots.ts'

interface SlotTaker {
  /** Starts the take loop unless it runs; resolves when it stops (no send waits, or closed). */
  take(): Promise<void>
  /** Cuts the loop's backoff short: the last waiting send left, or the keeper closes. */
  cutShort(): void
  /**
   * For close(): waits, within `bounded`, for a take under way, then gives back once more what a
   * take whose answer was lost may have got.
   */
  finish(bounded: (p: Promise<unknown>) => Promise<unknown>): Promise<void>
}

export function createSlotTaker(o: {
  db: Kysely<Database>
  clock: Clock
  holder: string
  max: number
  ttlMs: number
  maxWaitMs: number
  /** The note of this worker's liveness lock while its LISTEN session holds it, for its takes (holder-lock.ts); null: none. */
  lockNote?: (() => string | null) | undefined
  /** The sends waiting for a slot, first come first: how many to take, and whom a failure fails. */
  waiting: { fail: (err: unknown) => void }[]
  /** Hands a slot taken to the next waiting send, or parks or frees it. */
  giveBack: (held: HeldSlot) => void
  /** The tokens of the slots this worker knows it holds (in use or parked). */
  known: () => string[]
  closed: () => boolean
}): SlotTaker {
  const { waiting } = o
  // The take loop while it runs: close() waits for a statement of it still under way.
  let taking: Promise<void> | null = null
  let nap: AbortController | null = null
  // monotonicNow before a take that failed: it may have committed slots this worker never learned of.
  let lostTakeAt: number | null = null

  // One take at a time for all waiting sends; between fruitless takes a backoff that the last
  // waiter leaving cuts short (a handover serves a waiting send without waking it). After a failed
  // take, and before any other (so no take of ours can race it), what that take may have got is
  // freed: one lost answer must not keep every worker's sends waiting for a TTL.
  function takeForWaiting(): Promise<void> {
    taking ??= takeLoop().finally(() => {
      taking = null
      // A send that asked after the loop's last look found it still running and started none.
      if (waiting.length > 0 && !o.closed()) void takeForWaiting()
    })
    return taking
  }

  async function takeLoop() {
    let delay = 20
    while ((waiting.length > 0 || lostTakeAt !== null) && !o.closed()) {
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
      const takenAt = monotonicNow(o.clock)
      const lockNote = o.lockNote?.() ?? null
      let got: { slot: number; token: string }[]
      try {
        got = await takeSlots(o.db, {
          want: waiting.length,
          max: o.max,
          holder: o.holder,
          ttlMs: o.ttlMs,
          lockNote,
        })
      } catch (err) {
        for (const w of waiting.splice(0)) w.fail(err)
        lostTakeAt = takenAt
        continue
      }
      await noteSinceLocked(got, lockNote)
      for (const g of got) o.giveBack({ ...g, takenAt, sureAt: takenAt })
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

  // The LISTEN session took the lock while the take ran: the lock's statement noted the slots this
  // worker held when it ran, not these if the take committed after. (One answered before the note
  // was in is noted by the session's statement after the lock's: holder-lock.ts.) A failure leaves
  // them as the take wrote them: they wait out their TTL should this worker die, as before the lock
  // was held.
  async function noteSinceLocked(got: { slot: number; token: string }[], wrote: string | null) {
    const note = o.lockNote?.() ?? null
    if (got.length === 0 || note === null || note === wrote) return
    await noteSlots(o.db, got, note).catch(() => {})
  }

  // True when done: freed, or expired by now anyway. A failure fails the sends waiting meanwhile.
  async function freeLostTake(): Promise<boolean> {
    if (lostTakeAt === null || monotonicNow(o.clock) - lostTakeAt >= o.ttlMs) {
      lostTakeAt = null
      return true
    }
    const known = o.known()
    try {
      await freeUnknownSlots(o.db, { holder: o.holder, known })
      lostTakeAt = null
      return true
    } catch (err) {
      for (const w of waiting.splice(0)) w.fail(err)
      return false
    }
  }

  return {
    take: takeForWaiting,
    cutShort: () => nap?.abort(),
    async finish(bounded) {
      if (taking) await bounded(taking)
      // A take whose answer was lost and whose give-back has not succeeded yet: one more try.
      if (lostTakeAt !== null) await bounded(freeLostTake())
    },
  }
}
