// A settle queue's unrecorded outcomes: those pushed and not written (given up, found lost once a stop began, or still on their way), bounded, the stop's own named first.
import type { QueuedSettlement } from './settle-batch.ts'
import {
  createIdTally,
  UNRECORDED_NAMED,
  type UnrecordedIds,
  unrecordedOf,
} from './unrecorded-ids.ts'

/** What a queue can say, as a stop ends, of the outcomes it has not written. */
export interface UnrecordedOutcomes {
  /**
   * The outcomes pushed and not written: given up, found lost (the row's lease another's by then)
   * since stopBegan(), or still on their way. A process's life long: the first UNRECORDED_NAMED
   * named, the rest counted. The stop's own (given up or found lost since it began, still on
   * their way) are named before those given up earlier: each of those was logged when given up,
   * its lease long reclaimed, and a process that gave up many must not leave its stop's unnamed.
   */
  unrecorded(): UnrecordedIds
  /**
   * A stop began: from now on an outcome whose write finds its lease lost counts as unrecorded, its
   * row taken by another worker that may send it again. One found lost before was logged then (and
   * counted as lease_lost) and is its new holder's since: no part of what the stop leaves behind,
   * it would make every later stop of the process exit 1 (a database outage longer than a lease,
   * its sends found in the mailbox since, no duplicate).
   */
  stopBegan(): void
}

export function createUnrecordedOutcomes() {
  // Pushed and not answered yet; and those answered null because their write was given up.
  const open = new Set<QueuedSettlement>()
  const givenUpBefore = createIdTally()
  const givenUpInStop = createIdTally()
  let stopping = false
  const lost = createIdTally()
  return {
    pushed: (p: QueuedSettlement) => open.add(p),
    answered: (p: QueuedSettlement) => open.delete(p),
    givenUp: (id: string) => (stopping ? givenUpInStop : givenUpBefore).add(id),
    /** Its write found the lease lost: counted once a stop began (stopBegan). */
    foundLost(id: string) {
      if (stopping) lost.add(id)
    },
    unrecorded: (): UnrecordedIds =>
      unrecordedOf([
        { ids: givenUpInStop.ids(), count: givenUpInStop.count() },
        { ids: lost.ids(), count: lost.count() },
        { ids: [...open].slice(0, UNRECORDED_NAMED).map((p) => p.item.id), count: open.size },
        { ids: givenUpBefore.ids(), count: givenUpBefore.count() },
      ]),
    stopBegan() {
      stopping = true
    },
  }
}
