// Held leases: every lease a drainer holds, those not yet sent, and how many more it may claim.
import type { Lease } from './claim.ts'

// Local queue for open-gate transports (file, discard): rows per claim, per send slot and at most.
const LOCAL_QUEUE_FACTOR = 50
const MAX_CLAIM = 500

export interface HeldLeases {
  /** Every lease held (heartbeats keep them alive), by row id. */
  held: Map<string, Lease>
  /** The held leases not yet sent: only these count against the local queue. */
  unsent: Set<Lease>
  /** Drops a lease from both; false when the row is held by another (newer) lease. */
  release(lease: Lease): boolean
  /** Held, its outcome handed over to its settlement (no longer unsent): the settlement's to report. */
  settling(lease: Lease): boolean
  /** Rows per claim. */
  batch: number
  maxUnsent: number
  maxHeld: number
  roomToClaim(): boolean
}

export function createHeldLeases(o: { gateOpen: boolean; concurrency: number }): HeldLeases {
  // Every lease this drainer holds (heartbeats keep them alive), by row id ...
  const held = new Map<string, Lease>()
  // ... and those of them not yet sent: only these count against the local queue, so the next
  // claim overlaps the settlement of the last batch instead of waiting for it.
  // Invariant: a lease leaves both only by its own hand. A row can be held twice (a lease lost to
  // reclaim while it waited, then claimed again): the stale lease's end must not drop the live one.
  const unsent = new Set<Lease>()
  const release = (lease: Lease): boolean => {
    unsent.delete(lease)
    if (held.get(lease.id) !== lease) return false
    held.delete(lease.id)
    return true
  }
  // Rows held unsent: with shared limits (Graph) only what can be sent now, so other workers get
  // the rest; with an open gate a local queue, refilled by a whole claim while half a claim is still
  // unsent, so one statement feeds many sends and claims overlap sends instead of taking turns.
  const batch = o.gateOpen ? Math.min(MAX_CLAIM, o.concurrency * LOCAL_QUEUE_FACTOR) : o.concurrency
  const lowWater = Math.floor(batch / 2)
  const maxUnsent = o.gateOpen ? lowWater + batch : batch
  // Sent rows awaiting their settlement statement also hold a lease; bound them too.
  const maxHeld = maxUnsent * 2
  const roomToClaim = () => unsent.size <= lowWater && held.size < maxHeld
  const settling = (lease: Lease) => held.get(lease.id) === lease && !unsent.has(lease)
  return { held, unsent, release, settling, batch, maxUnsent, maxHeld, roomToClaim }
}
