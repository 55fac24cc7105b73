// Drainer: one database's worker loop: claim when woken, deliver, heartbeat leases, reclaim, stop gracefully.
import { withLateFields } from '../log.ts'
import { createBlockNaming } from './block-naming.ts'
import { createClaimFailures } from './claim-failures.ts'
import { createClaimRound } from './claim-round.ts'
import type { DrainerDeps } from './drainer-deps.ts'
import { createLoopPulse, type DrainerStatus } from './drainer-status.ts'
import { windDown } from './drainer-wind-down.ts'
import { createHeldLeases } from './held-leases.ts'
import { createLeaseDeadlines } from './lease-deadlines.ts'
import { createLeaseUpkeep } from './lease-upkeep.ts'
import { LAST_CHECK_IN_SLOT_MS } from './send-attempt.ts'
import { createSettlements } from './settlements.ts'
import { createStartQueue } from './start-queue.ts'
import { startSends } from './start-send.ts'
import { createWakeTimers } from './wake-timers.ts'
import { createWorkerRegistration } from './worker-registration.ts'

export interface Drainer {
  start(): void
  /** `rowId`: the one row a notification named (its transaction inserted that row alone). */
  wake(rowId?: string): void
  /** Stops claiming, lets in-flight sends finish within `graceMs`, then aborts them. */
  stop(graceMs: number): Promise<void>
  status(): DrainerStatus
}

export function createDrainer(d: DrainerDeps): Drainer {
  const cfg = d.config
  const heldLeases = createHeldLeases({ gateOpen: d.gate.open, concurrency: cfg.concurrency })
  const { held, roomToClaim } = heldLeases
  const deliveries = new Set<Promise<void>>()
  const stopping = new AbortController()
  const abort = new AbortController()
  let wanted = true
  let backlog = false
  let wakeUp: (() => void) | null = null
  let loop: Promise<void> | null = null
  const pulse = createLoopPulse(d.clock)
  // Each line carries the worker's lease key once it has one: a row's lease_owner finds its lines.
  const log = withLateFields(d.log.child({ db: d.dbName }), () => {
    const key = leaseKey.current()
    return key === null ? {} : { workerKey: key }
  })
  const { leaseKey, worker } = createWorkerRegistration(d, log)
  // A loop that runs but whose claims all fail (a read-only database after a failover, a revoked
  // privilege) sends nothing: readiness must say so, since the loop itself looks alive.
  const claimFailures = createClaimFailures(d.clock, log)
  const pollMs = () => d.pollIntervalMs?.() ?? cfg.pollIntervalSeconds * 1000

  const settle = createSettlements({
    db: d.db,
    workerId: d.worker.id,
    config: cfg,
    clock: d.clock,
    log,
  })

  // The deadline noted with each start is this process's own (sql/0078).
  const sendTimeoutSeconds = d.sendTimeoutMs === undefined ? null : d.sendTimeoutMs / 1000
  const lastChecks = createStartQueue((leases) => startSends(d.db, leases, sendTimeoutSeconds), {
    clock: d.clock,
    slowMs: LAST_CHECK_IN_SLOT_MS,
  })

  // The news since the last claim began. undefined: none. A row id: the only news named that row
  // (its transaction inserted it alone), which the next claim with no backlog tries alone first
  // (claimBatch's notifiedId). null: other news (a bulk insert, a timer, a poll, a reclaim, a second
  // row), and the claim looks for itself. News may mean rows the claim in flight did not see; a wake
  // for room in the local queue (refill) is none: it only means "claim the backlog", which a claim
  // that came back short has shown to be gone (it cost every drain one more empty claim).
  let news: string | null | undefined
  const wake = (rowId?: string) => {
    news = news === undefined && rowId !== undefined ? rowId : null
    wanted = true
    wakeUp?.()
  }
  const refill = () => {
    wanted = true
    wakeUp?.()
  }
  const deadlines = createLeaseDeadlines(d.clock, cfg.leaseSeconds * 1000, {
    ...(d.sendTimeoutMs !== undefined ? { sendTimeoutMs: d.sendTimeoutMs } : {}),
    heartbeatMs: cfg.heartbeatSeconds * 1000,
  })
  const upkeep = createLeaseUpkeep({
    dbName: d.dbName,
    db: d.db,
    worker,
    config: cfg,
    clock: d.clock,
    log,
    ...(d.onEvent ? { onEvent: d.onEvent } : {}),
    held,
    settling: heldLeases.settling,
    deadlines,
    onBeat: leaseKey.beaten,
    wake,
    lookups: d.lookup !== null,
  })
  const { due, poll } = createWakeTimers({
    clock: d.clock,
    pollMs,
    stopped: () => stopping.signal.aborted,
    wake,
  })

  const claimAndDeliver = createClaimRound({
    d,
    log,
    leases: heldLeases,
    deadlines,
    due,
    settle,
    lastChecks,
    stopping: stopping.signal,
    abort: abort.signal,
    deliveries,
    leaseKey,
    // A backlog wakes the loop at low water; without one, a wake claims at once (when not too busy).
    roomMade: () => {
      if ((backlog || wanted) && roomToClaim()) refill()
      // A send that met a block (a refused credential) settled: the loop names the waiting rows.
      else if (!blockNaming.named() && blockedMs() > 0) wakeUp?.()
    },
  })

  // Rows claimed while no send can succeed would only be handed back, each with a history row.
  const blockedMs = () => d.sendBlockedForMs?.() ?? 0
  const mayClaim = () => wanted && roomToClaim() && blockedMs() <= 0
  const blockNaming = createBlockNaming(d, log)

  async function run() {
    while (!stopping.signal.aborted) {
      pulse.turned()
      if (mayClaim()) {
        blockNaming.claimed()
        wanted = false
        const rowId = backlog ? null : (news ?? null)
        news = undefined
        try {
          const r = await claimAndDeliver(rowId)
          backlog = r.full
          if (!r.full && news === undefined) wanted = false
          claimFailures.succeeded()
          if (r.claimed > 0) continue
        } catch (error) {
          wanted = true
          const waitMs = claimFailures.failed(error)
          d.onEvent?.({ type: 'loop_error', db: d.dbName, where: 'claim', error })
          await d.clock.sleep(waitMs, stopping.signal)
          continue
        }
      }
      // A wake that arrived while we were claiming must not be lost to the wait below, nor a stop
      // (stop() wakes only a wait already begun).
      if (mayClaim()) continue
      if (stopping.signal.aborted) break
      // Blocked, the wake stays wanted and the loop looks again when the block ends.
      if (blockedMs() > 0) {
        // Once per block, and at each wake meanwhile (rows enqueued since).
        if (!blockNaming.named() || wanted) {
          await blockNaming.markWaiting().catch((error) => {
            d.onEvent?.({ type: 'loop_error', db: d.dbName, where: 'mark_waiting', error })
          })
        }
        if (mayClaim() || stopping.signal.aborted) continue
        if (wanted) poll.arm(blockedMs())
      }
      poll.arm(pollMs())
      // No claim until a wake: failed claims, if any, are not being retried now.
      claimFailures.idle()
      await new Promise<void>((resolve) => {
        wakeUp = resolve
      })
      wakeUp = null
    }
  }

  return {
    start() {
      if (loop) return
      // Register (the lease key), note the gate's limits, reclaim, then claim: one after the other, so a start needs one
      // pooled connection. The timers start once that reclaim has said when the next is due (a
      // dead worker's lease ending soon); no lease is held before the first claim to heartbeat. A
      // registration that failed (the database away) is tried again by the first claim.
      loop = (async () => {
        await leaseKey.get().catch(() => {})
        // Not fatal: the limits hold as they stand (a changed rate then waits for another start).
        await d.gate.start?.().catch((error) => {
          log.warn('could not note this worker’s send limits', { err: error })
        })
        await upkeep.first()
        upkeep.startTimers()
        await run()
      })()
    },
    wake,
    async stop(graceMs) {
      stopping.abort()
      wakeUp?.()
      due.clear()
      poll.clear()
      await loop
      await windDown({ d, log, loop, graceMs, deliveries, abort, held, settle, upkeep })
    },
    status: () => ({
      running: loop !== null && !stopping.signal.aborted,
      lastLoopAt: pulse.lastAt(),
      loopSilentMs: pulse.silentMs(),
      inFlight: held.size,
      claimsFailing: claimFailures.current(),
    }),
  }
}
