// Drainer: one database's worker loop: claim when woken, deliver, heartbeat leases, reclaim, stop gracefully.
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.ts'
import type { WorkerConfig } from '../config.ts'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import { claimBatch, type Lease } from './claim.ts'
import { deliverBatch, type MailboxLookup } from './deliver.ts'
import { createDueTimer } from './due-timer.ts'
import type { EngineEventHandler } from './events.ts'
import { deregisterWorker, type WorkerIdentity } from './heartbeat.ts'
import { createLeaseDeadlines } from './lease-deadlines.ts'
import { createLeaseUpkeep } from './lease-upkeep.ts'
import type { SendGate } from './send-gate.ts'
import type { Sender } from './sender.ts'
import { createSettlements } from './settlements.ts'
import type { Slots } from './slots.ts'
import { createStartQueue } from './start-queue.ts'
import { startSends } from './start-send.ts'

// Local queue for open-gate transports (file, discard): rows per claim, per send slot and at most.
const LOCAL_QUEUE_FACTOR = 50
const MAX_CLAIM = 500

export interface DrainerDeps {
  dbName: string
  db: Kysely<Database>
  sender: Sender
  gate: SendGate
  slots: Slots
  clock: Clock
  log: Logger
  worker: WorkerIdentity
  config: WorkerConfig
  mailFrom: string | null
  lookup: MailboxLookup | null
  ambiguousPolicy: 'resend' | 'hold'
  /** Poll interval override, e.g. 1 s when the listener had to fall back to polling. */
  pollIntervalMs?: () => number
  /** ms during which no send can succeed (Graph: the credential stands refused): nothing is claimed. */
  sendBlockedForMs?: () => number
  /** How long one send may take (Graph's request timeout): a send starts only with that much lease left. */
  sendTimeoutMs?: number
  /** The claim statement (claimBatch); replaced only by tests that inject a failure into it. */
  claim?: typeof claimBatch
  onEvent?: EngineEventHandler
  rng?: () => number
}

export interface Drainer {
  start(): void
  wake(): void
  /** Stops claiming, lets in-flight sends finish within `graceMs`, then aborts them. */
  stop(graceMs: number): Promise<void>
  status(): DrainerStatus
}

export interface DrainerStatus {
  running: boolean
  lastLoopAt: number | null
  inFlight: number
  /** Since when every claim has failed (null after one succeeded), the last failure and its SQLSTATE. */
  claimsFailing: { since: number; lastAt: number; sqlstate: string | null } | null
}

export function createDrainer(d: DrainerDeps): Drainer {
  const cfg = d.config
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
  const deliveries = new Set<Promise<void>>()
  const stopping = new AbortController()
  const abort = new AbortController()
  let wanted = true
  let backlog = false
  let wakeUp: (() => void) | null = null
  let loop: Promise<void> | null = null
  let lastLoopAt: number | null = null
  // A loop that runs but whose claims all fail (a read-only database after a failover, a revoked
  // privilege) sends nothing: readiness must say so, since the loop itself looks alive.
  let claimsFailing: DrainerStatus['claimsFailing'] = null
  const log = d.log.child({ db: d.dbName })
  const pollMs = () => d.pollIntervalMs?.() ?? cfg.pollIntervalSeconds * 1000

  const settle = createSettlements({
    db: d.db,
    workerId: d.worker.id,
    config: cfg,
    clock: d.clock,
    log,
  })

  const lastChecks = createStartQueue((leases) => startSends(d.db, leases))

  // Wakes from outside (notification, timer, poll, reclaim) may mean rows the claim in flight did
  // not see; a wake for room in the local queue only means "claim the backlog", which a claim that
  // came back short has shown to be gone (it cost every drain one more empty claim).
  let news = 0
  const wake = () => {
    news++
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
    worker: d.worker,
    config: cfg,
    clock: d.clock,
    log,
    ...(d.onEvent ? { onEvent: d.onEvent } : {}),
    held,
    deadlines,
    wake,
  })
  // Rows held unsent: with shared limits (Graph) only what can be sent now, so other workers get
  // the rest; with an open gate a local queue, refilled by a whole claim while half a claim is still
  // unsent, so one statement feeds many sends and claims overlap sends instead of taking turns.
  const batch = d.gate.open
    ? Math.min(MAX_CLAIM, cfg.concurrency * LOCAL_QUEUE_FACTOR)
    : cfg.concurrency
  // A claim returns its rows as one JSON value, which Postgres caps at 1 GB (SQLSTATE 54000): a few
  // huge rows (a source row with a big bytea) at the head of the claim order would fail every claim
  // and stop the outbox. After such a failure the next `batch` claims take one row each (a row's
  // message and source row are at most 255 MB each, jsonb's own limit).
  let singleRowClaims = 0
  const claim = d.claim ?? claimBatch
  const lowWater = Math.floor(batch / 2)
  const maxUnsent = d.gate.open ? lowWater + batch : batch
  // Sent rows awaiting their settlement statement also hold a lease; bound them too.
  const maxHeld = maxUnsent * 2
  const roomToClaim = () => unsent.size <= lowWater && held.size < maxHeld
  // A backlog wakes the loop at low water; without one, a wake claims at once (when not too busy).

  const due = createDueTimer({
    clock: d.clock,
    horizonMs: pollMs,
    stopped: () => stopping.signal.aborted,
    fire: wake,
  })
  // The backstop poll: armed when the loop goes to wait and left running when a wake ends the wait
  // (cancelling it on every wake cost each pickup 0.03-0.05 ms). So a poll comes at most one
  // interval after a wait began, at most one extra claim per interval; a shorter interval
  // (polling once the listener is gone) arms a sooner timer at the next wait.
  const poll = createDueTimer({
    clock: d.clock,
    horizonMs: () => Number.POSITIVE_INFINITY,
    stopped: () => stopping.signal.aborted,
    fire: wake,
  })

  async function claimAndDeliver(): Promise<{
    claimed: number
    full: boolean
    run: Promise<void>
  }> {
    const room = Math.min(batch, maxUnsent - unsent.size, maxHeld - held.size)
    if (room <= 0) return { claimed: 0, full: false, run: Promise.resolve() }
    const limit = singleRowClaims > 0 ? 1 : room
    const claimSentAt = d.clock.now()
    let claimed: Awaited<ReturnType<typeof claimBatch>>
    try {
      claimed = await claim(d.db, {
        limit,
        workerId: d.worker.id,
        leaseSeconds: cfg.leaseSeconds,
        defaultMaxAttempts: cfg.maxAttempts,
        markStarted: d.gate.open,
      })
    } catch (error) {
      if (limit === 1 || (error as { code?: unknown } | null)?.code !== '54000') throw error
      log.warn('claim too large for one statement; claiming one row at a time for a while', {
        limit,
      })
      singleRowClaims = batch
      return claimAndDeliver()
    }
    if (singleRowClaims > 0) singleRowClaims--
    const { leases, nextDueInMs } = claimed
    if (nextDueInMs !== null) due.arm(nextDueInMs)
    if (leases.length === 0) return { claimed: 0, full: false, run: Promise.resolve() }
    for (const l of leases) {
      held.set(l.id, l)
      unsent.add(l)
    }
    deadlines.confirm(leases, claimSentAt)
    d.onEvent?.({ type: 'claimed', db: d.dbName, count: leases.length })
    const run = deliverBatch(
      {
        dbName: d.dbName,
        db: d.db,
        sender: d.sender,
        gate: d.gate,
        slots: d.slots,
        settle,
        start: lastChecks,
        clock: d.clock,
        log,
        mailFrom: d.mailFrom,
        backoff: { baseMs: cfg.retryBaseSeconds * 1000, maxMs: cfg.retryMaxSeconds * 1000 },
        lookup: d.lookup,
        ambiguousPolicy: d.ambiguousPolicy,
        ...(d.onEvent ? { onEvent: d.onEvent } : {}),
        ...(d.rng ? { rng: d.rng } : {}),
        deadlines,
        stopping: stopping.signal,
        abort: abort.signal,
        handedOver: (lease) => {
          if (unsent.delete(lease) && (backlog || wanted) && roomToClaim()) refill()
        },
        done: (lease) => {
          if (!release(lease)) return
          if ((backlog || wanted) && roomToClaim()) refill()
        },
        onRetry: due.arm,
      },
      leases,
    ).catch((error) => {
      // deliverBatch handles rows itself; reaching here is a bug: leases expire and get reclaimed.
      // Stop heartbeating them (or they never expire).
      for (const l of leases) release(l)
      log.error('delivery failed', { err: error })
      d.onEvent?.({ type: 'loop_error', db: d.dbName, where: 'deliver', error })
    })
    deliveries.add(run)
    void run.finally(() => deliveries.delete(run))
    return { claimed: leases.length, full: leases.length === limit, run }
  }

  // Rows claimed while no send can succeed would only be handed back, each with a history row.
  const blockedMs = () => d.sendBlockedForMs?.() ?? 0
  const mayClaim = () => wanted && roomToClaim() && blockedMs() <= 0

  async function run() {
    let errorDelay = 500
    while (!stopping.signal.aborted) {
      lastLoopAt = d.clock.now()
      if (mayClaim()) {
        wanted = false
        const newsBefore = news
        try {
          const r = await claimAndDeliver()
          backlog = r.full
          if (!r.full && news === newsBefore) wanted = false
          errorDelay = 500
          claimsFailing = null
          if (r.claimed > 0) continue
        } catch (error) {
          wanted = true
          const code = (error as { code?: unknown } | null)?.code
          claimsFailing = {
            since: claimsFailing?.since ?? d.clock.now(),
            lastAt: d.clock.now(),
            sqlstate: typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : null,
          }
          log.warn('claim failed; retrying', { err: error })
          d.onEvent?.({ type: 'loop_error', db: d.dbName, where: 'claim', error })
          await d.clock.sleep(errorDelay * (0.5 + Math.random() / 2), stopping.signal)
          // Bounded: a database that comes back is used again within a few seconds, without spinning.
          errorDelay = Math.min(errorDelay * 2, 5_000)
          continue
        }
      }
      // A wake that arrived while we were claiming must not be lost to the wait below, nor a stop
      // (stop() wakes only a wait already begun).
      if (mayClaim()) continue
      if (stopping.signal.aborted) break
      // Blocked, the wake stays wanted and the loop looks again when the block ends.
      if (wanted && blockedMs() > 0) poll.arm(blockedMs())
      poll.arm(pollMs())
      await new Promise<void>((resolve) => {
        wakeUp = resolve
      })
      wakeUp = null
    }
  }

  return {
    start() {
      if (loop) return
      // Reclaim (which registers the worker), then claim: one after the other, so a start needs one
      // pooled connection.
      loop = (async () => {
        await upkeep.first()
        await run()
      })()
      upkeep.startTimers()
    },
    wake,
    async stop(graceMs) {
      stopping.abort()
      wakeUp?.()
      due.clear()
      poll.clear()
      await loop
      const all = Promise.all([...deliveries])
      const finished = await Promise.race([
        all.then(() => true),
        d.clock.sleep(graceMs).then(() => false),
      ])
      if (!finished) {
        log.warn('shutdown grace over; aborting sends in flight', { inFlight: held.size })
        abort.abort()
        await Promise.race([all, d.clock.sleep(5_000)])
      }
      await settle.idle()
      await d.gate.close?.()
      upkeep.stopTimers()
      await deregisterWorker(d.db, d.worker.id).catch(() => {})
    },
    status: () => ({
      running: loop !== null && !stopping.signal.aborted,
      lastLoopAt,
      inFlight: held.size,
      claimsFailing,
    }),
  }
}
