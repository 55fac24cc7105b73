// SlotRenewal: keeps the send slots in use alive while their sends run, renewing those past a third of the TTL in one statement.
import type { Kysely } from 'kysely'
import { type Clock, monotonicNow } from '../clock.ts'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import type { HeldSlot } from './held-slot.ts'
import { renewSlots } from './send-slots.ts'

interface SlotRenewal {
  /** Renewals run while `inUse` holds slots: called when a slot is put in use. */
  arm(): void
  stop(): void
}

export function createSlotRenewal(o: {
  db: Kysely<Database>
  clock: Clock
  log: Logger
  ttlMs: number
  /** Slots handed to sends and not given back yet; one that expired is dropped from it. */
  inUse: Set<HeldSlot>
  closed: () => boolean
}): SlotRenewal {
  const { inUse } = o
  let renewing: AbortController | null = null
  let renewFailing = false
  const renewAfterMs = o.ttlMs / 3

  // Checks every sixth of the TTL, so a slot is renewed at a third to half of it, and a renewal that
  // fails (the database unreachable) is tried again before the slot expires.
  function armRenew() {
    if (renewing || inUse.size === 0 || o.closed()) return
    const timer = new AbortController()
    renewing = timer
    void o.clock.sleep(renewAfterMs / 2, timer.signal).then(async () => {
      if (timer.signal.aborted) return
      await renewDue()
      renewing = null
      armRenew()
    })
  }

  async function renewDue() {
    const sentAt = monotonicNow(o.clock)
    const due = [...inUse].filter((h) => sentAt - h.sureAt >= renewAfterMs)
    if (due.length === 0) return
    let kept: Set<string>
    try {
      kept = new Set(await renewSlots(o.db, due, o.ttlMs))
    } catch (err) {
      if (!renewFailing) o.log.warn('could not renew send slots in use; retrying', { err })
      renewFailing = true
      return
    }
    renewFailing = false
    for (const h of due) {
      if (kept.has(h.token)) h.sureAt = sentAt
      else if (inUse.delete(h))
        // Expired before it could be renewed: another worker may be using it now.
        o.log.warn('a send slot expired while in use; the concurrency limit may be exceeded', {
          slot: h.slot,
        })
    }
  }

  return {
    arm: armRenew,
    stop() {
      renewing?.abort()
      renewing = null
    },
  }
}
