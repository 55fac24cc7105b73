// A drainer's heartbeat tick: extends the leases it holds, waits apart for rows another transaction holds, and reports a lost lease once.
import type { Kysely } from 'kysely'
import { type Clock, monotonicNow } from '../clock.ts'
import type { WorkerConfig } from '../config.ts'
import type { Database } from '../db/schema.ts'
import { QUERY_CANCELED_SQLSTATE } from '../db/sqlstate.ts'
import type { Logger } from '../log.ts'
import type { Lease } from './claim.ts'
import type { EngineEventHandler } from './events.ts'
import { extendLeases, extendReachableLeases } from './heartbeat.ts'
import type { LeaseDeadlines } from './lease-deadlines.ts'
import { type BeatResult, beatNow } from './registry-beat.ts'
import type { WorkerIdentity } from './worker-identity.ts'

// A lock wait that outlasted lock_timeout.
const LOCK_NOT_AVAILABLE = '55P03'

export interface LeaseHeartbeatDeps {
  dbName: string
  db: Kysely<Database>
  worker: WorkerIdentity
  config: Pick<WorkerConfig, 'leaseSeconds'>
  clock: Clock
  log: Logger
  onEvent?: EngineEventHandler
  /** The leases the drainer holds right now. */
  held: ReadonlyMap<string, Lease>
  /**
   * Whether a held lease's outcome has gone to its settlement. A heartbeat that misses such a row
   * may have run after the settlement's statement committed: only the settlement's answer says
   * whether the lease was lost, and it counts it then (deliver.ts).
   */
  settling: (lease: Lease) => boolean
  deadlines?: LeaseDeadlines
  /** What each heartbeat's or reclaim's registry beat met (the worker's entry's key). */
  onBeat?: (beat: BeatResult) => void
  /**
   * A heartbeat's or reclaim's registry beat built from `beat` (beatNow) committed: what it wrote
   * of the worker may be older than the worker's state now (credential-refusal-note.ts).
   */
  beatCommitted?: (beat: WorkerIdentity) => void
}

/**
 * One heartbeat of the held leases per call; `track` records the statement it leaves running (the
 * wait for busy rows), which the upkeep's stop waits for; `stopped` says a stop has begun.
 */
export function createLeaseHeartbeat(
  d: LeaseHeartbeatDeps,
  track: <T>(p: Promise<T>) => Promise<T>,
  stopped: () => boolean,
): () => Promise<void> {
  // Leases whose rows another transaction held at a tick: extended apart from the ticks, by one
  // statement at a time that waits for the locks, so the ticks go on extending the other leases.
  let waitingForBusy: Promise<void> | null = null
  // The leases of its statement running now, and the busy ones a tick met meanwhile, which its next
  // statement takes up: each asked for from then (a lower bound of that statement's sending), so a
  // send waiting for its heartbeat's answer waits on for that statement (lease-deadlines.ts).
  let busyNow = new Set<Lease>()
  const busyNext = new Map<Lease, () => void>()

  async function heartbeatOnce() {
    const leases = [...d.held.values()]
    // Idle: the registry's beat rides on the reclaim, due at least once per lease length.
    if (leases.length === 0) return
    const sentAt = monotonicNow(d.clock)
    // A send short of its margin waits for this answer (lease-deadlines.ts), not a slow database.
    const answered = d.deadlines?.asked(leases, sentAt)
    let reached: Awaited<ReturnType<typeof extendReachableLeases>>
    try {
      const beat = beatNow(d.worker)
      reached = await extendReachableLeases(d.db, beat, leases, d.config.leaseSeconds)
      d.onBeat?.(reached.beat)
      d.beatCommitted?.(beat)
      judge(
        leases.filter((l) => !reached.busy.has(l.id)),
        reached.extended,
        sentAt,
      )
    } finally {
      answered?.()
    }
    const { busy } = reached
    if (busy.size === 0) return
    const busyLeases = leases.filter((l) => busy.has(l.id))
    if (waitingForBusy) {
      const at = monotonicNow(d.clock)
      for (const l of busyLeases)
        if (!busyNow.has(l) && !busyNext.has(l))
          busyNext.set(l, d.deadlines?.asked([l], at) ?? (() => {}))
      return
    }
    waitingForBusy = track(extendBusy(busyLeases)).finally(() => {
      waitingForBusy = null
    })
  }

  /**
   * Waits for the rows another transaction holds and extends their leases. A wait cut short by
   * lock_timeout or statement_timeout, the row still held, is taken up again at once: left to the
   * next tick, the lock could go meanwhile (with the lease ended) and a reclaim take the row first.
   */
  async function extendBusy(first: Lease[]) {
    let leases = first
    let sent = false
    try {
      for (let tries = 1; leases.length > 0 || busyNext.size > 0; tries++) {
        // The stop waits for these statements: once it began, none is sent after the first.
        if (sent && stopped()) return
        // The busy leases ticks met since the last statement join this one.
        const joined = [...busyNext.values()]
        leases = [...new Set([...leases, ...busyNext.keys()])].filter((l) => d.held.get(l.id) === l)
        busyNext.clear()
        if (leases.length === 0) {
          // Every one let go meanwhile (its delivery over): no statement to send.
          for (const done of joined) done()
          continue
        }
        busyNow = new Set(leases)
        sent = true
        const at = monotonicNow(d.clock)
        const answered = d.deadlines?.asked(leases, at)
        try {
          const beat = beatNow(d.worker)
          judge(leases, await extendLeases(d.db, beat, leases, d.config.leaseSeconds), at)
          d.beatCommitted?.(beat)
          leases = []
          tries = 0
        } catch (error) {
          d.log[tries === 1 ? 'warn' : 'debug']('heartbeat failed', { err: error })
          d.onEvent?.({ type: 'loop_error', db: d.dbName, where: 'heartbeat', error })
          const code = (error as { code?: unknown } | null)?.code
          if (stopped() || (code !== LOCK_NOT_AVAILABLE && code !== QUERY_CANCELED_SQLSTATE)) return
        } finally {
          answered?.()
          for (const done of joined) done()
        }
      }
    } finally {
      busyNow = new Set()
      for (const done of busyNext.values()) done()
      busyNext.clear()
    }
  }

  /** What a heartbeat statement sent at `sentAt` says of `leases`: `alive` were extended, the rest are lost. */
  function judge(leases: readonly Lease[], alive: ReadonlySet<string>, sentAt: number) {
    for (const l of leases) {
      if (alive.has(l.id)) d.deadlines?.confirm([l], sentAt)
      // Reported once: a lost lease stays held (and heartbeated) until its delivery lets it go.
      // A row its own settlement took is no lost lease, though it is no longer 'sending'.
      else if (d.held.get(l.id) === l && !d.settling(l) && d.deadlines?.isLost(l) !== true) {
        d.deadlines?.markLost(l)
        d.log.warn('lease lost during heartbeat', { outboxId: l.id, attempt: l.attempt })
        d.onEvent?.({ type: 'lease_lost', db: d.dbName, id: l.id, during: 'heartbeat' })
      }
    }
  }

  return heartbeatOnce
}
