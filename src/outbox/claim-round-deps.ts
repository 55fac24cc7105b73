// What a claim round is given by its drainer: the leases it fills, the delivery's pieces, the stop's signals.
import type { Logger } from '../log.ts'
import type { DrainerDeps } from './drainer-deps.ts'
import type { DueTimer } from './due-timer.ts'
import type { HeldLeases } from './held-leases.ts'
import type { LeaseDeadlines } from './lease-deadlines.ts'
import type { LeaseKey } from './lease-key.ts'
import type { OwnReleases } from './own-releases.ts'
import type { SettleQueue } from './settle-queue.ts'
import type { SideStatements } from './side-statements.ts'
import type { StartQueue } from './start-queue.ts'

export interface ClaimRoundDeps {
  d: DrainerDeps
  log: Logger
  leases: HeldLeases
  deadlines: LeaseDeadlines
  due: DueTimer
  settle: SettleQueue
  /** The last check before a send (startSends), shared by the batches. */
  lastChecks: StartQueue
  stopping: AbortSignal
  abort: AbortSignal
  /** Every batch's delivery in flight, until it ends. */
  deliveries: Set<Promise<void>>
  /** A lease was handed over or released: there may be room to claim again. */
  roomMade: () => void
  /** The key the claimed rows name the worker by (lease-key.ts): registered before the first claim. */
  leaseKey: LeaseKey
  /** The statements begun beside the claims and sends, for the stop to wait for. */
  besides: SideStatements
  /** Wakes the other workers for rows given back due at once for them (peer-wake.ts). */
  wakePeers: () => void
  /** The rows released while the worker runs, and the claims that took them (own-releases.ts). */
  ownReleases: OwnReleases
  /** The note clearing a refusal under way (credential-refusal-note.ts): permits wait for it. */
  refusalClearing?: () => Promise<void> | null
}
