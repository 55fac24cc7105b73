// Drainer: one database's worker loop: claim when woken, deliver, heartbeat leases, reclaim, stop gracefully.
import { monotonicNow } from '../clock.ts'
import { withLateFields } from '../log.ts'
import { createBlockNaming } from './block-naming.ts'
import { createClaimFailures } from './claim-failures.ts'
import { createClaimRound } from './claim-round.ts'
import { createCredentialRefusalNote } from './credential-refusal-note.ts'
import type { DrainerDeps } from './drainer-deps.ts'
import { createLeaseKeeping } from './drainer-lease-keeping.ts'
import { createSendRecords } from './drainer-send-records.ts'
import { startUp } from './drainer-start-up.ts'
import { createLoopPulse, type DrainerStatus } from './drainer-status.ts'
import { windDown } from './drainer-wind-down.ts'
import { createHeldLeases } from './held-leases.ts'
import { createHeldOwedRows } from './held-owed-rows.ts'
import { createLastSend } from './last-send.ts'
import { createOwnReleases } from './own-releases.ts'
import { createPeerWake } from './peer-wake.ts'
import { createSideStatements } from './side-statements.ts'
import { createTokenCame } from './token-wait-rows.ts'
import type { UnrecordedIds } from './unrecorded-ids.ts'
import { createWakeNews } from './wake-news.ts'
import { backstopPollMs, createWakeTimers } from './wake-timers.ts'
import { createWorkerRegistration } from './worker-registration.ts'

export interface Drainer {
  start(): void
  /** `rowId`: the one row a notification named (its transaction inserted that row alone). */
  wake(rowId?: string): void
  /** sql/0116's notification: rows waiting for a mailbox's owed probe stayed locked at its end. */
  owedRowsHeld(): void
  /** A worker that could send stopped cleanly (worker-stopped-notice.ts): a refused worker asks again whether it is every live worker's refusal. */
  workerStopped(): void
  /** Stops claiming, lets in-flight sends finish within `graceMs`, then aborts them. */
  stop(graceMs: number): Promise<void>
  /** Sends the provider accepted whose outcome is not recorded (settlements.ts): each is reclaimed as an interrupted send once its lease expires. */
  unrecordedSends(): UnrecordedIds
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
  // Its newest send, noted in its registry entry by the next beat (sql/0201).
  const lastSend = createLastSend(d.clock)
  const { leaseKey, worker } = createWorkerRegistration(d, log, lastSend)
  // A loop that runs but whose claims all fail (a read-only database after a failover, a revoked
  // privilege) sends nothing: readiness must say so, since the loop itself looks alive.
  const claimFailures = createClaimFailures(d.clock, log)
  const pollMs = () => backstopPollMs(d)

  const { settle, lastChecks } = createSendRecords(d, log, lastSend)

  // The news since the last claim began (wake-news.ts); a refill is none.
  const news = createWakeNews()
  let wakes = 0
  const wake = (rowId?: string) => {
    wakes++
    news.heard(rowId)
    wanted = true
    wakeUp?.()
  }
  const refill = () => {
    wanted = true
    wakeUp?.()
  }
  // The statements begun beside the claims and sends, awaited by none: the stop waits for each.
  const besides = createSideStatements()
  // The other workers woken for rows this one leaves due at once for them and will not take now
  // (peer-wake.ts): those its settlements give back, those its reclaims put back. One for both,
  // so a burst of either is one notification.
  const wakePeers = createPeerWake({ db: d.db, log, besides })
  // Rows released while it runs, for its own loop: its stop wakes the others for those it left.
  const ownReleases = createOwnReleases()
  const refusalNote = createCredentialRefusalNote({
    db: d.db,
    worker,
    log,
    besides,
    stopping: stopping.signal,
    // An ask made in this block before the note landed may have missed another's (block-naming.ts).
    noted: () => {
      if (blockNaming.refusalNoted()) wakeUp?.()
    },
  })
  d.credentialRefusalChanged?.(refusalNote.changed)
  const { deadlines, upkeep } = createLeaseKeeping({
    d,
    log,
    leases: heldLeases,
    registration: { leaseKey, worker },
    beatCommitted: (beat) => {
      refusalNote.beatCommitted(beat)
      lastSend.beatCommitted(beat)
    },
    wake,
    wakePeers,
  })
  // Rows an owed probe's end left locked: after its notification, and at each backstop poll while
  // no notification can be heard (the idle cost stays one statement per poll while LISTEN works).
  const heldOwedRows = createHeldOwedRows({
    db: d.db,
    clock: d.clock,
    log,
    signal: stopping.signal,
    besides,
  })
  d.tokenCame?.(createTokenCame({ db: d.db, log, besides, stopping: stopping.signal, wake }))
  const { due, poll } = createWakeTimers({
    clock: d.clock,
    pollMs,
    stopped: () => stopping.signal.aborted,
    wake,
    polled: () => d.listener.state() !== 'listening' && heldOwedRows.polled(),
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
    besides,
    wakePeers,
    ownReleases,
    refusalClearing: refusalNote.clearing,
    // A backlog wakes the loop at low water; without one, a wake claims at once (when not too busy).
    roomMade: () => {
      if ((backlog || wanted) && roomToClaim()) refill()
      // A send that met a block (a refused credential) settled: the loop names the waiting rows.
      else if (!blockNaming.named() && blockedMs() > 0) wakeUp?.()
    },
  })

  // Rows claimed while no send can succeed would only be handed back, each with a history row.
  const blockedMs = () => d.sendBlockedForMs?.() ?? 0
  // Nor while this worker's token request hangs: its rows would go back for a worker with a token.
  const heldForToken = () => d.heldForToken?.() ?? null
  const mayClaim = () => wanted && roomToClaim() && blockedMs() <= 0 && heldForToken() === null
  const blockNaming = createBlockNaming(d, log, {
    wake: () => wakeUp?.(),
    stopped: () => stopping.signal.aborted,
  })

  async function run() {
    while (!stopping.signal.aborted) {
      pulse.turned()
      if (mayClaim()) {
        blockNaming.claimed()
        wanted = false
        const rowId = news.take(backlog)
        try {
          const r = await claimAndDeliver(rowId)
          backlog = r.full
          if (!r.full && !news.any()) wanted = false
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
        // Once per block, and at each wake meanwhile (rows enqueued since), one heard while its
        // statement ran too: that statement may not have seen the rows it told of, and the wait
        // below would lose it (they went unnamed until the block's end).
        const heard = wakes
        if (!blockNaming.named() || wanted || blockNaming.askOwed()) await blockNaming.markWaiting()
        const again = wakes !== heard || blockNaming.askOwed()
        if (mayClaim() || stopping.signal.aborted || again) continue
        if (wanted) poll.arm(blockedMs())
      }
      poll.arm(pollMs())
      // No claim until a wake: failed claims, if any, are not being retried now.
      claimFailures.idle()
      // Held for a token, the wake stays wanted and the request's end is one.
      const tokenEnds = wanted ? heldForToken() : null
      await new Promise<void>((resolve) => {
        wakeUp = resolve
        void tokenEnds?.then(resolve)
      })
      wakeUp = null
    }
  }

  return {
    start() {
      if (loop) return
      // Register, note the gate's limits, reclaim (drainer-start-up.ts), then claim.
      loop = (async () => {
        await startUp(d, log, leaseKey, upkeep)
        await run()
      })()
    },
    wake,
    owedRowsHeld: () => heldOwedRows.held(),
    workerStopped: () => {
      if (blockNaming.workerStopped()) wakeUp?.()
    },
    async stop(graceMs) {
      const startedAt = monotonicNow(d.clock)
      // Outcomes still to come: the leases whose delivery has not handed its outcome over yet.
      settle.stopBegan(() => heldLeases.unsent.size > 0)
      d.gate.stopBegan?.()
      stopping.abort()
      wakeUp?.()
      due.clear()
      poll.clear()
      blockNaming.stopped()
      await loop
      // The loop is over: a row it released while running and had not claimed again since is
      // due at once for the others, and only a wake tells them (own-releases.ts).
      if (ownReleases.owed()) wakePeers()
      await windDown({
        d,
        log,
        loop,
        graceMs,
        startedAt,
        deliveries,
        abort,
        held,
        settle,
        upkeep,
        lastSend,
      })
      // Waited for once no send runs (one that ended within the grace may have begun one: a
      // throttle's deferral of its mailbox's rows); those running meanwhile went on beside it.
      await besides.settled()
    },
    unrecordedSends: settle.unrecordedSends,
    status: () => ({
      running: loop !== null && !stopping.signal.aborted,
      lastLoopAt: pulse.lastAt(),
      loopSilentMs: pulse.silentMs(),
      inFlight: held.size,
      claimsFailing: claimFailures.current(),
    }),
  }
}
