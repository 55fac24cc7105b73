// Lease upkeep: a drainer's heartbeats (its leases and its registry entry) and its reclaim of expired leases, on timers.
import type { Kysely } from 'kysely'
import type { Clock } from '../clock.ts'
import type { WorkerConfig } from '../config.ts'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import type { Lease } from './claim.ts'
import type { EngineEventHandler } from './events.ts'
import { extendLeases, type WorkerIdentity } from './heartbeat.ts'
import type { LeaseDeadlines } from './lease-deadlines.ts'
import { reclaimExpired } from './reclaim.ts'

const IDLE_REGISTRY_BEAT_MS = 60_000

export interface LeaseUpkeep {
  /** One heartbeat (registers the worker), then one reclaim: before the first claim. */
  first(): Promise<void>
  /** Heartbeats every `heartbeatSeconds`, reclaims every half lease (at least 5 s). */
  startTimers(): void
  stopTimers(): void
}

export function createLeaseUpkeep(d: {
  dbName: string
  db: Kysely<Database>
  worker: WorkerIdentity
  config: Pick<WorkerConfig, 'heartbeatSeconds' | 'leaseSeconds' | 'maxAttempts'>
  clock: Clock
  log: Logger
  onEvent?: EngineEventHandler
  /** The leases the drainer holds right now. */
  held: ReadonlyMap<string, Lease>
  deadlines?: LeaseDeadlines
  /** Reclaimed rows are pending again: claim them. */
  wake: () => void
}): LeaseUpkeep {
  let timers: ReturnType<typeof setInterval>[] = []
  let lastBeatAt = Number.NEGATIVE_INFINITY

  async function heartbeatOnce(force = true) {
    const leases = [...d.held.values()]
    // Idle: only the registry needs a beat, and once a minute is plenty (idle cost per database).
    if (!force && leases.length === 0 && d.clock.now() - lastBeatAt < IDLE_REGISTRY_BEAT_MS) return
    const sentAt = d.clock.now()
    lastBeatAt = sentAt
    const alive = await extendLeases(d.db, d.worker, leases, d.config.leaseSeconds)
    for (const l of leases) {
      if (alive.has(l.id)) d.deadlines?.confirm([l], sentAt)
      // Reported once: a lost lease stays held (and heartbeated) until its delivery lets it go.
      else if (d.held.get(l.id) === l && d.deadlines?.isLost(l) !== true) {
        d.deadlines?.markLost(l)
        d.log.warn('lease lost during heartbeat', { outboxId: l.id, attempt: l.attempt })
        d.onEvent?.({ type: 'lease_lost', db: d.dbName, id: l.id, during: 'heartbeat' })
      }
    }
  }

  async function reclaimOnce() {
    const rows = await reclaimExpired(d.db, { defaultMaxAttempts: d.config.maxAttempts })
    if (rows.length > 0) {
      d.log.warn('reclaimed expired leases', { count: rows.length, ids: rows.map((r) => r.id) })
      d.onEvent?.({ type: 'reclaimed', db: d.dbName, count: rows.length })
      // A row out of attempts, or cancelled, ends here, not in a settlement: it must be counted all
      // the same (outbox_sends_total{outcome="failed"} is what the "sends failing" alert watches).
      for (const r of rows) {
        if (r.status === 'failed') {
          d.onEvent?.({
            type: 'settled',
            db: d.dbName,
            id: r.id,
            outcome: 'failed',
            code: 'lease_expired',
          })
        } else if (r.status === 'cancelled') {
          d.onEvent?.({ type: 'settled', db: d.dbName, id: r.id, outcome: 'cancelled' })
        }
      }
      d.wake()
    }
  }

  // A tick still running when the next one is due is skipped, not stacked.
  const every = (ms: number, what: string, f: () => Promise<unknown>) => {
    let busy = false
    const t = setInterval(async () => {
      if (busy) return
      busy = true
      try {
        await f()
      } catch (error) {
        d.log.warn(`${what} failed`, { err: error })
        d.onEvent?.({ type: 'loop_error', db: d.dbName, where: what, error })
      } finally {
        busy = false
      }
    }, ms)
    timers.push(t)
  }

  return {
    async first() {
      await heartbeatOnce().catch(() => {})
      await reclaimOnce().catch(() => {})
    },
    startTimers() {
      every(d.config.heartbeatSeconds * 1000, 'heartbeat', () => heartbeatOnce(false))
      every(Math.max(5, d.config.leaseSeconds / 2) * 1000, 'reclaim', reclaimOnce)
    },
    stopTimers() {
      for (const t of timers) clearInterval(t)
      timers = []
    },
  }
}
