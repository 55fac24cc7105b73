// A drainer's lease keeping: the deadlines of the leases it holds, and the upkeep (lease-upkeep.ts) that beats and reclaims on timers.
import type { Logger } from '../log.ts'
import type { DrainerDeps } from './drainer-deps.ts'
import type { HeldLeases } from './held-leases.ts'
import { createLeaseDeadlines } from './lease-deadlines.ts'
import { createLeaseUpkeep } from './lease-upkeep.ts'
import type { WorkerIdentity } from './worker-identity.ts'
import type { createWorkerRegistration } from './worker-registration.ts'

export function createLeaseKeeping(k: {
  d: DrainerDeps
  log: Logger
  leases: HeldLeases
  registration: ReturnType<typeof createWorkerRegistration>
  /** What a committed beat built from `beat` wrote may be older than the worker now. */
  beatCommitted: (beat: WorkerIdentity) => void
  /** Reclaimed rows are pending again: claim them. */
  wake: () => void
  /** And the other workers woken to take them too (peer-wake.ts). */
  wakePeers: () => void
}) {
  const { d, log, leases, registration, beatCommitted, wake, wakePeers } = k
  const cfg = d.config
  const deadlines = createLeaseDeadlines(d.clock, cfg.leaseSeconds * 1000, {
    ...(d.sendTimeoutMs !== undefined ? { sendTimeoutMs: d.sendTimeoutMs } : {}),
    heartbeatMs: cfg.heartbeatSeconds * 1000,
  })
  const upkeep = createLeaseUpkeep({
    dbName: d.dbName,
    db: d.db,
    worker: registration.worker,
    config: cfg,
    clock: d.clock,
    log,
    ...(d.onEvent ? { onEvent: d.onEvent } : {}),
    held: leases.held,
    settling: leases.settling,
    deadlines,
    onBeat: registration.leaseKey.beaten,
    beatCommitted,
    wake,
    wakePeers,
    lookups: d.lookup !== null,
    lookupGraceSeconds: d.lookupGraceSeconds,
  })
  return { deadlines, upkeep }
}
