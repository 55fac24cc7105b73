// A drainer's first steps before its loop: register (the lease key), note the gate's limits, reclaim, start the timers.
import type { Logger } from '../log.ts'
import type { DrainerDeps } from './drainer-deps.ts'
import type { createLeaseUpkeep } from './lease-upkeep.ts'
import type { createWorkerRegistration } from './worker-registration.ts'

type LeaseKey = Pick<ReturnType<typeof createWorkerRegistration>['leaseKey'], 'get'>
type Upkeep = Pick<ReturnType<typeof createLeaseUpkeep>, 'first' | 'startTimers'>

/**
 * One after the other, so a start needs one pooled connection. The timers start once that reclaim
 * has said when the next is due (a dead worker's lease ending soon); no lease is held before the
 * first claim to heartbeat. A registration that failed (the database away) is tried again by the
 * first claim.
 */
export async function startUp(d: DrainerDeps, log: Logger, leaseKey: LeaseKey, upkeep: Upkeep) {
  await leaseKey.get().catch(() => {})
  // Not fatal: the limits hold as they stand (a changed rate then waits for another start).
  await d.gate.start?.().catch((error) => {
    log.warn('could not note this worker’s send limits', { err: error })
  })
  await upkeep.first()
  upkeep.startTimers()
}
