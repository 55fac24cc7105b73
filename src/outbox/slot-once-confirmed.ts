// A send slot taken back for a row whose lease only a heartbeat's answer still on its way can show held with the send's margin: that answer waited for (bounded) without the slot.
import type { Lease } from './claim.ts'
import type { DeliveryDeps } from './deliver.ts'

/**
 * With its slot given back, waits for a heartbeat's answer still on its way that can make the
 * lease hold with the send's margin (a slow database answers late: the lease extended, yet
 * not known here), then takes the slot again: true with the slot, the lease held. Fencing: the
 * deadline moves only on an answer that extended the lease, counted from that statement's sending
 * (lease-deadlines.ts), and it is checked again once the slot is back; the last check and the
 * settlement's token stay as they were.
 */
export async function slotOnceConfirmed(d: DeliveryDeps, lease: Lease): Promise<boolean> {
  if (!d.deadlines || !(await d.deadlines.heldOnceAnswered(lease, d.stopping))) return false
  if (!((!d.stopping.aborted && d.slots.tryAcquire()) || (await d.slots.acquire(d.stopping))))
    return false
  if (d.deadlines.holds(lease)) return true
  d.slots.release()
  return false
}
