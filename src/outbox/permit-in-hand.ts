// A gated send's provider permit in hand: given back once its request is over or while its row waits without sending, and taken again under every rule of the gate.
import type { DeliveryDeps } from './deliver.ts'
import { giveBackPaused } from './paused-give-back.ts'
import type { Finish, Ready } from './send-attempt.ts'
import type { SendPermit } from './send-gate.ts'
import { giveUpUnsent } from './unsent-give-up.ts'

export interface PermitInHand {
  /** Gives the permit in hand back; nothing when none is (called more than once, it gives back once). */
  release(): void
  /**
   * After a wait without it: the gate asked again as for a new send (a throttle's pause, a probe
   * owed to another row, a pacing turn unless the permit given back took one still the mailbox's
   * last and not yet due: that one is kept).
   * True with a permit in hand; else what becomes of the row, to run once its slot is given back.
   */
  takeAgain(): Promise<true | (() => Promise<void>)>
  /** The permit in hand left the mailbox's pause to the last check, under this key (SendPermit). */
  readonly checkPause: string | undefined
}

/** `permit` just taken from the gate for `r`; `finish` settles the row. */
export function permitInHand(
  d: DeliveryDeps,
  r: Ready,
  finish: Finish,
  permit: SendPermit,
): PermitInHand {
  let inHand: SendPermit | null = permit
  // The pacing turn taken for the row is its own through a wait without the permit: kept when it
  // asks again, not taken a second time.
  let turnTaken = permit.turnTaken
  const release = () => {
    const p = inHand
    inHand = null
    p?.release().catch((err) => d.log.warn('could not give a send permit back', { err }))
  }
  return {
    release,
    get checkPause() {
      return inHand?.checkPause
    },
    async takeAgain() {
      let again: Awaited<ReturnType<DeliveryDeps['gate']['acquire']>>
      try {
        // The pause read by the gate itself: the row's last check may be behind it.
        again = await d.gate.acquire(r.mail.from.address, d.stopping, true, r.lease.id, turnTaken)
      } catch (err) {
        d.log.warn('could not take a send permit; releasing the row', { db: d.dbName, err })
        return () => finish(r.lease, { kind: 'released' })
      }
      // Null only once the stop began.
      if (!again) return () => giveUpUnsent(d, r, finish, 'stopped')
      if ('pausedForMs' in again) return () => giveBackPaused(d, r, finish, again)
      inHand = again
      turnTaken = again.turnTaken
      return true
    },
  }
}
