// Lease upkeep on timers: a drainer's heartbeats (lease-heartbeat.ts: its leases and its registry entry), its reclaim of expired leases and its expiry sweep (reclaim-report.ts tells what each did).
import type { WorkerConfig } from '../config.ts'
import { EXPIRY_SWEEP_LIMIT } from './expiry-sweep.ts'
import { everyFormerMailFromRowDue } from './former-mail-from-rows.ts'
import { createLeaseHeartbeat, type LeaseHeartbeatDeps } from './lease-heartbeat.ts'
import { lookupPastExpirySeconds } from './lookup-grace.ts'
import { reclaimExpired } from './reclaim.ts'
import { reportReclaim } from './reclaim-report.ts'
import { beatNow } from './registry-beat.ts'

// A reclaim comes due this long after the lease it waits for has ended (`lease_expires_at < now()`
// is strict, and timers fire a little early or late).
const RECLAIM_MARGIN_MS = 100

// How long the rows a former MAIL_FROM's pause held are asked for while the own MAIL_FROM holds
// them: that pause, no longer renewed by a probe, ends by itself within it (a refusal's 5 minutes,
// Graph's Retry-After honoured up to an hour).
const FORMER_ROWS_ASKED_MS = 3_600_000

interface LeaseUpkeep {
  /**
   * A heartbeat of any lease held, then one reclaim, which registers the worker: before the first
   * claim.
   */
  first(): Promise<void>
  /**
   * Heartbeats every `heartbeatSeconds` while leases are held; reclaims when the earliest lease in
   * flight ends, at least once per lease length (its statement also beats the registry and fails
   * pending rows past their expiresAt). After `first()` has resolved: its reclaim says when the
   * timers' first is due.
   */
  startTimers(): void
  /**
   * No timer fires after it; resolves once a heartbeat or reclaim a timer started has ended (the
   * stop's deregistration and the pool's end come after it, and none of its statements outlives them).
   */
  stopTimers(): Promise<void>
}

export function createLeaseUpkeep(
  d: LeaseHeartbeatDeps & {
    config: Pick<WorkerConfig, 'heartbeatSeconds' | 'leaseSeconds' | 'maxAttempts'>
    /** Reclaimed rows are pending again: claim them. */
    wake: () => void
    /** Reclaimed rows are due at once for any worker: the others are woken too (peer-wake.ts). */
    wakePeers?: () => void
    /** Mailbox lookups are on: the sweep leaves interrupted sends to a claim's lookup, up to its bound. */
    lookups?: boolean
    /** The lookup grace (LOOKUP_GRACE_SECONDS unless a test shortens it): the sweep's bound counts it. */
    lookupGraceSeconds?: number | undefined
  },
): LeaseUpkeep {
  let timers: ReturnType<typeof setInterval>[] = []
  let reclaimTimer: ReturnType<typeof setTimeout> | undefined
  let stopped = true
  // The ticks the timers started that have not ended yet: a stop waits for them.
  const running = new Set<Promise<unknown>>()
  const track = <T>(p: Promise<T>): Promise<T> => {
    running.add(p)
    p.then(
      () => running.delete(p),
      () => running.delete(p),
    )
    return p
  }
  const leaseMs = d.config.leaseSeconds * 1000

  const heartbeatOnce = createLeaseHeartbeat(d, track, () => stopped)

  // Since when a reclaim cleared a former MAIL_FROM's probe whose rows are still to be brought due
  // (this worker's own MAIL_FROM stood paused or owed its probe, or the statement failed); null
  // when none. Asked at each reclaim until done, so the rows go once the own pause ends, not at the
  // former one's; given up FORMER_ROWS_ASKED_MS on, when that pause has ended by itself.
  let formerRowsOwedSince: number | null = null

  /**
   * A probe cleared as no live worker's (a former MAIL_FROM's): the rows naming no sender given
   * back to its pause's end are this worker's MAIL_FROM's now, due at once. Returns whether that is
   * done; not while the own MAIL_FROM holds them (they wait for it), nor after a failure: asked
   * again at the next reclaim.
   */
  async function formerRowsDue(): Promise<boolean> {
    const own = d.worker.probeMailbox ?? ''
    if (own === '') return true
    try {
      const { due, ownHeld } = await everyFormerMailFromRowDue(d.db, own)
      if (due > 0) {
        d.log.info('rows a former MAIL_FROM’s pause held are due now', { db: d.dbName, count: due })
        d.wake()
      }
      return !ownHeld
    } catch (err) {
      d.log.warn('could not bring due the rows a former MAIL_FROM’s pause held', {
        db: d.dbName,
        err,
      })
      return false
    }
  }

  /**
   * Reclaims what has ended and fails what has expired unclaimed; returns the milliseconds until
   * the next reclaim is due.
   */
  async function reclaimOnce(): Promise<number> {
    const limit = 1000
    const beat = beatNow(d.worker)
    const r = await reclaimExpired(d.db, {
      defaultMaxAttempts: d.config.maxAttempts,
      lookups: d.lookups ?? false,
      limit,
      // Rows whose outcome this worker is recording are its settlement's to write (reclaim.ts).
      keep: [...d.held.values()].filter(d.settling),
      beat,
      sweep: {
        workerId: d.worker.id,
        limit: EXPIRY_SWEEP_LIMIT,
        lookups: d.lookups ?? false,
        lookupPastExpirySeconds: lookupPastExpirySeconds(d.lookupGraceSeconds),
      },
      // Another entry is live while it beat within two of its own lease lengths (stale-probes.ts).
      staleProbes: { ownMailbox: d.worker.probeMailbox ?? '' },
    })
    d.beatCommitted?.(beat)
    reportReclaim(d, r)
    if (r.staleProbes) formerRowsOwedSince = d.clock.now()
    if (formerRowsOwedSince !== null) {
      const done =
        d.clock.now() - formerRowsOwedSince > FORMER_ROWS_ASKED_MS || (await formerRowsDue())
      if (done) formerRowsOwedSince = null
    }
    // More ended (or expired) than one statement takes: again at once. Otherwise when the earliest
    // lease in flight ends; none ends sooner than a lease taken from now on, a lease length away.
    if (r.rows.length >= limit || r.swept.length >= EXPIRY_SWEEP_LIMIT) return 0
    return Math.min(r.nextExpiryMs ?? leaseMs, leaseMs) + RECLAIM_MARGIN_MS
  }

  function scheduleReclaim(ms: number) {
    if (stopped) return
    reclaimTimer = setTimeout(async () => {
      let next = leaseMs
      try {
        next = await track(reclaimOnce())
      } catch (error) {
        // Unreachable now: asked again in a while, as a timer per half lease did.
        next = Math.max(5_000, leaseMs / 2)
        d.log.warn('reclaim failed', { err: error })
        d.onEvent?.({ type: 'loop_error', db: d.dbName, where: 'reclaim', error })
      }
      scheduleReclaim(next)
    }, ms)
  }

  // A tick still running when the next one is due is skipped, not stacked.
  const every = (ms: number, what: string, f: () => Promise<unknown>) => {
    let busy = false
    const t = setInterval(async () => {
      if (busy) return
      busy = true
      try {
        await track(f())
      } catch (error) {
        d.log.warn(`${what} failed`, { err: error })
        d.onEvent?.({ type: 'loop_error', db: d.dbName, where: what, error })
      } finally {
        busy = false
      }
    }, ms)
    timers.push(t)
  }

  let firstReclaimDueMs = leaseMs
  return {
    async first() {
      // Leases held (none before a drainer's first claim) are kept; the reclaim's beat registers
      // the worker.
      await heartbeatOnce().catch(() => {})
      firstReclaimDueMs = await reclaimOnce().catch(() => Math.max(5_000, leaseMs / 2))
    },
    startTimers() {
      stopped = false
      every(d.config.heartbeatSeconds * 1000, 'heartbeat', heartbeatOnce)
      scheduleReclaim(firstReclaimDueMs)
    },
    async stopTimers() {
      stopped = true
      for (const t of timers) clearInterval(t)
      timers = []
      clearTimeout(reclaimTimer)
      await Promise.allSettled([...running])
    },
  }
}
