// Prometheus metrics: engine events counted and table state read at each scrape, into the families of metric-families.ts.
import type { Kysely } from 'kysely'
import type { Registry } from 'prom-client'
import { type Clock, monotonicNow, systemClock } from '../clock.ts'
import { type Database, OUTBOX_STATUSES } from '../db/schema.ts'
import { QUERY_CANCELED_SQLSTATE } from '../db/sqlstate.ts'
import type { StatementRoute } from '../db/statement-route.ts'
import type { EngineEvent, ListenerState } from '../outbox/events.ts'
import type { HealthSource } from '../outbox/health.ts'
import { withStatementTimeout } from '../outbox/statement-timeout.ts'
import { liveStats, settledCounts } from '../outbox/stats.ts'
import { GRAPH_OUTAGE_CAUSES } from '../transport/graph-reachability.ts'
import { SENDER_MAILBOX_NAME } from '../transport/sender-mailbox.ts'
import { createLiveStatsReader, type LiveStatsReader } from './live-stats-reader.ts'
import { createMetricFamilies } from './metric-families.ts'
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

interface MetricsDeps {
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
  /** Whether the provider refuses the configured sender mailbox now; absent: no such gauge. */
  senderMailboxRefused?: () => boolean
  /** What keeps the provider out of reach now (Graph: `unreachable`, `unauthorized`), else null; absent: no such gauge. */
  providerOutage?: () => string | null
  /** The provider's certificate (Graph: portal thumbprint, notAfter in epoch ms); absent: no such gauge. */
  certificate?: { thumbprint: string; notAfter: number }
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

export function createMetrics(deps: MetricsDeps): Metrics {
  const metric = createMetricFamilies()
  // Fixed for the process's life: the certificate is read once, at start.
  if (deps.certificate) {
    metric.certificateExpiry.set(
      { thumbprint: deps.certificate.thumbprint },
      deps.certificate.notAfter / 1000,
    )
  }

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
    // Monotonic: a wall clock stepped during the scrape must neither spend its bound nor stretch it.
    const startedAt = monotonicNow(clock)
    try {
      const now = await live.get(name)!.get(timeoutMs)
      metric.rows.set({ db: name, status: 'pending' }, now.pending)
      metric.rows.set({ db: name, status: 'sending' }, now.sending)
      metric.oldestPending.set({ db: name }, now.oldestPendingAgeSeconds ?? 0)
      metric.queueUsage.set({ db: name }, now.notificationQueueUsage)
      metric.databaseUp.set({ db: name }, 1)
    } catch {
      // Stale numbers would look healthy: drop them and say the scrape failed.
      for (const s of OUTBOX_STATUSES) metric.rows.remove({ db: name, status: s })
      metric.oldestPending.remove({ db: name })
      metric.queueUsage.remove({ db: name })
      metric.databaseUp.set({ db: name }, 0)
    }
    const counts = await settled
      .get(name)!
      .get(Math.max(0, timeoutMs - (monotonicNow(clock) - startedAt)))
    for (const status of ['sent', 'failed', 'cancelled'] as const) {
      if (counts) metric.rows.set({ db: name, status }, counts[status])
      else metric.rows.remove({ db: name, status })
    }
  }

  // Exported only where a LISTEN is wanted: a constant 0 from an api process (no listener) or a
  // poll-only worker would keep `min(outbox_listener_connected) == 0` firing for good.
  const listenWanted = deps.listenMode !== 'poll'
  function setListener(db: string, state: ListenerState | 'disabled') {
    if (!listenWanted || state === 'disabled') metric.listenerConnected.remove({ db })
    else metric.listenerConnected.set({ db }, state === 'listening' ? 1 : 0)
  }

  // The listener's state as this process knows it: no database round trip.
  function scrapeListeners() {
    for (const h of deps.health.listenerStates()) setListener(h.name, h.listener)
  }

  return {
    registry: metric.registry,
    contentType: metric.registry.contentType,
    observe(e) {
      live.get(e.db)?.changed()
      switch (e.type) {
        case 'settled':
          metric.sends.inc({ db: e.db, outcome: e.outcome })
          // A row sent back from a paused mailbox (or to a reserved pacing turn) asked nobody: the
          // send that caused the pause counted.
          if (
            e.outcome === 'throttled' &&
            e.code !== 'mailbox_paused' &&
            e.code !== 'mailbox_paced'
          )
            metric.throttled.inc({ db: e.db })
          if (e.durationMs !== undefined) metric.duration.observe({ db: e.db }, e.durationMs / 1000)
          break
        case 'reclaimed':
          if (e.count > 0) metric.reclaimed.inc({ db: e.db }, e.count)
          break
        case 'lease_lost':
          metric.leasesLost.inc({ db: e.db })
          break
        case 'loop_error':
          metric.loopErrors.inc({ db: e.db })
          break
        case 'listener':
          setListener(e.db, e.state)
          break
        default:
          break
      }
    },
    incTokenRefresh(outcome = 'success', code) {
      metric.tokenRefreshes.inc({ outcome })
      if (outcome === 'failure' && code) metric.tokenFailures.inc({ code })
    },
    async render() {
      scrapeListeners()
      if (deps.senderMailboxRefused)
        metric.senderMailboxRefused.set(
          { mailbox: SENDER_MAILBOX_NAME },
          deps.senderMailboxRefused() ? 1 : 0,
        )
      if (deps.providerOutage) {
        const now = deps.providerOutage()
        for (const cause of GRAPH_OUTAGE_CAUSES)
          metric.graphOutage.set({ cause }, now === cause ? 1 : 0)
      }
      await Promise.all(deps.databases.map((d) => scrapeDatabase(d.name)))
      return metric.registry.metrics()
    },
  }
}

/** The statement ran out of its statement_timeout (57014), itself or as withStatementTimeout's cause. */
function timedOut(error: unknown): boolean {
  const e = error as { code?: unknown; cause?: { code?: unknown } } | null
  return e?.code === QUERY_CANCELED_SQLSTATE || e?.cause?.code === QUERY_CANCELED_SQLSTATE
}
