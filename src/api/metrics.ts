// Prometheus metrics (prom-client, own Registry): engine events as counters, table state at scrape time.
import type { Kysely } from 'kysely'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import { type Clock, systemClock } from '../clock.ts'
import { type Database, OUTBOX_STATUSES } from '../db/schema.ts'
import type { StatementRoute } from '../db/statement-route.ts'
import type { EngineEvent, ListenerState } from '../outbox/events.ts'
import type { HealthSource } from '../outbox/health.ts'
import { withStatementTimeout } from '../outbox/statement-timeout.ts'
import { liveStats, settledCounts } from '../outbox/stats.ts'
import { createLiveStatsReader, type LiveStatsReader } from './live-stats-reader.ts'
import { createSettledCountsCache, type SettledCountsCache } from './settled-counts-cache.ts'

export interface Metrics {
  readonly registry: Registry
  readonly contentType: string
  /** Feed every engine event here (main.ts wires the drainer's onEvent to it). */
  observe(e: EngineEvent): void
  /** The Graph token source calls this once per token request it makes (a failure with its code). */
  incTokenRefresh(outcome?: 'success' | 'failure', code?: string): void
  /** Queries each database (bounded), then renders the exposition text. */
  render(): Promise<string>
}

export interface MetricsDeps {
  /** `statements` (the statement route) takes the scrape's live statement; `db` the settled counts'. */
  databases: ReadonlyArray<{
    name: string
    db: Kysely<Database>
    statements: Pick<StatementRoute, 'db'>
  }>
  health: HealthSource
  /**
   * LISTEN_MODE (default `auto`). Under `poll` no listener ever connects, by choice: its
   * `polling` is the configured state, not the fallback from a failed LISTEN, so it is not reported
   * as a listener down.
   */
  listenMode?: 'auto' | 'poll'
  /** How long a scrape waits for its query: a slow database must not stall the scraper. */
  scrapeTimeoutMs?: number
  /**
   * How often finished rows (sent, failed, cancelled) are counted again for `outbox_rows` (default
   * 5 minutes): that reads every row's primary-key entry, since the table keeps every row. Rows in
   * play are live.
   */
  settledRefreshMs?: number
  /**
   * How long a scrape may reuse live numbers that found the outbox empty, while the database's
   * listener stays listening and no engine event of it arrives (see live-stats-reader.ts); default 0,
   * every scrape reads. Only where `observe` hears the listener's events (serve wires them).
   */
  quietReuseMs?: number
  clock?: Clock
}

const SETTLED_REFRESH_MS = 5 * 60_000
/**
 * serve's quietReuseMs: idle, Fly's scrape every 15 s reads once a minute; that is how old the
 * NOTIFY queue's fill may be then.
 */
export const QUIET_LIVE_REUSE_MS = 60_000
// A count of finished rows runs in the background, so it may take longer than a scrape.
const SETTLED_COUNT_TIMEOUT_MS = 60_000

const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30]

export function createMetrics(deps: MetricsDeps): Metrics {
  const registry = new Registry()
  const registers = [registry]
  const sends = new Counter({
    name: 'outbox_sends_total',
    help: 'Settled send attempts by outcome',
    labelNames: ['db', 'outcome'] as const,
    registers,
  })
  const duration = new Histogram({
    name: 'outbox_send_duration_seconds',
    help: 'Wall time of the send call (Graph sendMail or the configured transport)',
    labelNames: ['db'] as const,
    buckets: DURATION_BUCKETS,
    registers,
  })
  const throttled = new Counter({
    name: 'outbox_graph_throttled_total',
    help: 'Sends and mailbox lookups told to wait (429/503/504, a spent quota, a missing permission, no Graph token: a refused credential, Entra down or unreachable) and rescheduled without burning an attempt; not rows held back by a pause another send caused',
    labelNames: ['db'] as const,
    registers,
  })
  const reclaimed = new Counter({
    name: 'outbox_leases_reclaimed_total',
    help: 'Expired leases taken back from dead or stuck workers',
    labelNames: ['db'] as const,
    registers,
  })
  const leasesLost = new Counter({
    name: 'outbox_leases_lost_total',
    help: 'Writes refused because this worker no longer held the lease',
    labelNames: ['db'] as const,
    registers,
  })
  const loopErrors = new Counter({
    name: 'outbox_loop_errors_total',
    help: 'Errors caught in background loops (they are retried, never fatal)',
    labelNames: ['db'] as const,
    registers,
  })
  const tokenRefreshes = new Counter({
    name: 'outbox_token_refreshes_total',
    help: 'Graph access-token requests by outcome',
    labelNames: ['outcome'] as const,
    registers,
  })
  // Entra down or refusing shows here even while no row is due (a row's wait is `throttled` above).
  const tokenFailures = new Counter({
    name: 'outbox_token_failures_total',
    help: 'Failed Graph access-token requests by code (an AADSTS code, token_http_<status>, token_timeout, token_network)',
    labelNames: ['code'] as const,
    registers,
  })
  const rows = new Gauge({
    name: 'outbox_rows',
    help: 'Outbox rows by status (pending, sending: at each scrape; sent, failed, cancelled: recounted every 5 minutes, from indexes)',
    labelNames: ['db', 'status'] as const,
    registers,
  })
  const oldestPending = new Gauge({
    name: 'outbox_oldest_pending_age_seconds',
    help: 'Age of the oldest due pending row (database time; 0 when none)',
    labelNames: ['db'] as const,
    registers,
  })
  const queueUsage = new Gauge({
    name: 'outbox_notification_queue_usage',
    help: 'pg_notification_queue_usage(): fill level 0..1 of the NOTIFY queue',
    labelNames: ['db'] as const,
    registers,
  })
  const databaseUp = new Gauge({
    name: 'outbox_database_up',
    help: '1 when the last scrape query of this database succeeded (idle: or an earlier one whose numbers still stand, the outbox empty and its LISTEN session listening, silent since, for at most a minute)',
    labelNames: ['db'] as const,
    registers,
  })
  const listenerConnected = new Gauge({
    name: 'outbox_listener_connected',
    help: '1 while the LISTEN connection is listening; 0 while it connects or reconnects, or after it fell back to polling (LISTEN impossible, e.g. a transaction pooler). Absent where no LISTEN is wanted: serve --role api, LISTEN_MODE=poll',
    labelNames: ['db'] as const,
    registers,
  })

  const timeoutMs = deps.scrapeTimeoutMs ?? 2_000
  const settled = new Map<string, SettledCountsCache>(
    deps.databases.map((d) => [
      d.name,
      createSettledCountsCache({
        count: () =>
          withStatementTimeout(d.db, SETTLED_COUNT_TIMEOUT_MS, (trx) => settledCounts(trx, null)),
        clock: deps.clock ?? systemClock,
        refreshMs: deps.settledRefreshMs ?? SETTLED_REFRESH_MS,
        retrySoon: (error) => !timedOut(error),
      }),
    ]),
  )

  // Per scrape, one statement and only what is cheap: the rows in play through their partial
  // indexes and the NOTIFY queue's fill. (A transaction with a statement_timeout was five
  // statements per scrape: with the readiness probe it ran, 0.5 statements/s at Fly's 15 s.)
  const clock = deps.clock ?? systemClock
  const live = new Map<string, LiveStatsReader>(
    deps.databases.map((d) => [
      d.name,
      createLiveStatsReader({
        read: () => liveStats(d.statements.db, null),
        clock,
        reuseMs: deps.quietReuseMs ?? 0,
        listening: () =>
          deps.health.listenerStates().find((h) => h.name === d.name)?.listener === 'listening',
      }),
    ]),
  )

  // The live statement first, then (when due) the count of finished rows in what is left of the
  // bound: one after the other, a scrape needs one connection, which an idle pool keeps open.
  async function scrapeDatabase(name: string) {
    const startedAt = clock.now()
    try {
      const now = await live.get(name)!.get(timeoutMs)
      rows.set({ db: name, status: 'pending' }, now.pending)
      rows.set({ db: name, status: 'sending' }, now.sending)
      oldestPending.set({ db: name }, now.oldestPendingAgeSeconds ?? 0)
      queueUsage.set({ db: name }, now.notificationQueueUsage)
      databaseUp.set({ db: name }, 1)
    } catch {
      // Stale numbers would look healthy: drop them and say the scrape failed.
      for (const s of OUTBOX_STATUSES) rows.remove({ db: name, status: s })
      oldestPending.remove({ db: name })
      queueUsage.remove({ db: name })
      databaseUp.set({ db: name }, 0)
    }
    const counts = await settled.get(name)!.get(Math.max(0, timeoutMs - (clock.now() - startedAt)))
    for (const status of ['sent', 'failed', 'cancelled'] as const) {
      if (counts) rows.set({ db: name, status }, counts[status])
      else rows.remove({ db: name, status })
    }
  }

  // Exported only where a LISTEN is wanted: a constant 0 from an api process (no listener) or a
  // poll-only worker would keep `min(outbox_listener_connected) == 0` firing for good.
  const listenWanted = deps.listenMode !== 'poll'
  function setListener(db: string, state: ListenerState | 'disabled') {
    if (!listenWanted || state === 'disabled') listenerConnected.remove({ db })
    else listenerConnected.set({ db }, state === 'listening' ? 1 : 0)
  }

  // The listener's state as this process knows it: no database round trip.
  function scrapeListeners() {
    for (const h of deps.health.listenerStates()) setListener(h.name, h.listener)
  }

  return {
    registry,
    contentType: registry.contentType,
    observe(e) {
      live.get(e.db)?.changed()
      switch (e.type) {
        case 'settled':
          sends.inc({ db: e.db, outcome: e.outcome })
          // A row sent back from a paused mailbox (or to a reserved pacing turn) asked nobody: the
          // send that caused the pause counted.
          if (
            e.outcome === 'throttled' &&
            e.code !== 'mailbox_paused' &&
            e.code !== 'mailbox_paced'
          )
            throttled.inc({ db: e.db })
          if (e.durationMs !== undefined) duration.observe({ db: e.db }, e.durationMs / 1000)
          break
        case 'reclaimed':
          if (e.count > 0) reclaimed.inc({ db: e.db }, e.count)
          break
        case 'lease_lost':
          leasesLost.inc({ db: e.db })
          break
        case 'loop_error':
          loopErrors.inc({ db: e.db })
          break
        case 'listener':
          setListener(e.db, e.state)
          break
        default:
          break
      }
    },
    incTokenRefresh(outcome = 'success', code) {
      tokenRefreshes.inc({ outcome })
      if (outcome === 'failure' && code) tokenFailures.inc({ code })
    },
    async render() {
      scrapeListeners()
      await Promise.all(deps.databases.map((d) => scrapeDatabase(d.name)))
      return registry.metrics()
    },
  }
}

/** The statement ran out of its statement_timeout (57014), itself or as withStatementTimeout's cause. */
function timedOut(error: unknown): boolean {
  const e = error as { code?: unknown; cause?: { code?: unknown } } | null
  return e?.code === '57014' || e?.cause?.code === '57014'
}
