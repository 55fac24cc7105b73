// A send slot taken back for a row whose lease only a heartbeat's answer still on its way can show held with the send's margin: that answer waited for (bounded) without the slot or the provider permit.
import type { DeliveryDeps } from './deliver.ts'
import type { PermitInHand } from './permit-in-hand.ts'
import type { Finish, Ready } from './send-attempt.ts'
import { giveUpUnsent } from './unsent-give-up.ts'

/**
 * With its slot and its provider permit given back (the permit is every worker's: held, no other
 * row of the app could send meanwhile), waits for a heartbeat's answer still on its way that can
 * make the lease hold with the send's margin (a slow database answers late: the lease extended,
 * yet not known here), then takes the permit again under every rule of the gate and the slot:
 * true with both, the lease held; else what becomes of the row, to run once they are given back
 * (the caller gives the permit back). Fencing: the deadline moves only on an answer that extended
 * the lease, counted from that statement's sending (lease-deadlines.ts), and it is checked again
 * once the slot is back; the last check and the settlement's token stay as they were.
 * Invariant: no send starts once the stop began.
 */
export async function slotOnceConfirmed(
  d: DeliveryDeps,
  r: Ready,
  finish: Finish,
  permit: PermitInHand | undefined,
): Promise<true | (() => Promise<void>)> {
  permit?.release()
  const held =
    d.deadlines !== undefined && (await d.deadlines.heldOnceAnswered(r.lease, d.stopping))
  if (d.stopping.aborted) return () => giveUpUnsent(d, r, finish, 'stopped')
  if (!held) return () => giveUpUnsent(d, r, finish, 'unconfirmed')
  // The answer held the lease; what follows (the permit, the slot) may use the margin up itself.
  if (permit) {
    const again = await permit.takeAgain()
    if (again !== true) return again
  }
  if (!((!d.stopping.aborted && d.slots.tryAcquire()) || (await d.slots.acquire(d.stopping))))
    return () => giveUpUnsent(d, r, finish, 'stopped')
  if (d.deadlines?.holds(r.lease)) {
    // Held now, not before: a heartbeat's late answer confirmed it (only an answer moves it).
    d.log.debug('lease confirmed by a heartbeat’s late answer; sending', {
      db: d.dbName,
      outboxId: r.lease.id,
    })
    return true
  }
  d.slots.release()
  return () => giveUpUnsent(d, r, finish, 'outwaited')
}
