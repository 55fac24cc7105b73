// Prometheus metrics: engine events counted, and table state read at each scrape (database-scrape.ts), into the families of metric-families.ts.
import type { Kysely } from 'kysely'
import type { Registry } from 'prom-client'
import { type Clock, systemClock } from '../clock.ts'
import type { Database } from '../db/schema.ts'
import type { StatementRoute } from '../db/statement-route.ts'
import { type EngineEvent, type ListenerState, SETTLE_OUTCOMES } from '../outbox/events.ts'
import type { HealthSource } from '../outbox/health.ts'
import { GRAPH_OUTAGE_CAUSES } from '../transport/graph-outage.ts'
import { SENDER_MAILBOX_NAME } from '../transport/sender-mailbox.ts'
import {
  THROTTLE_CAUSES,
  THROTTLE_SERVICES,
  throttleCause,
  throttleService,
} from '../transport/throttle-cause.ts'
import { createDatabaseScrape } from './database-scrape.ts'
import { createMetricFamilies } from './metric-families.ts'

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
  /**
   * Whether this process drains the databases (serve's worker and all roles): then its counters
   * are exported at 0 from the start, each database's by every outcome.
   */
  drains?: boolean
  /** The provider's credential and whether it refuses it now; absent: no such gauge. */
  credential?: { kind: 'certificate' | 'secret'; refused(): boolean }
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

/**
 * serve's quietReuseMs: idle, Fly's scrape every 15 s reads once a minute; that is how old the
 * NOTIFY queue's fill may be then.
 */
export const QUIET_LIVE_REUSE_MS = 60_000

export function createMetrics(deps: MetricsDeps): Metrics {
  const metric = createMetricFamilies()
  // Fixed for the process's life: the certificate is read once, at start.
  if (deps.certificate) {
    metric.certificateExpiry.set(
      { thumbprint: deps.certificate.thumbprint },
      deps.certificate.notAfter / 1000,
    )
  }

  // Prometheus' increase() over a series first seen at 1 is 0: a counter born at its first event
  // would hide that event (often the only one) from the deploy guide's alerts. So every series an
  // alert reads exists from the start; token requests only where a Graph worker makes them.
  if (deps.drains) {
    for (const { name: db } of deps.databases) {
      for (const outcome of SETTLE_OUTCOMES) metric.sends.inc({ db, outcome }, 0)
      for (const service of THROTTLE_SERVICES)
        for (const cause of THROTTLE_CAUSES) metric.throttled.inc({ db, cause, service }, 0)
      for (const counter of [
        metric.mailboxRefused,
        metric.reclaimed,
        metric.leasesLost,
        metric.loopErrors,
      ])
        counter.inc({ db }, 0)
    }
  }
  if (deps.credential)
    for (const outcome of ['success', 'failure']) metric.tokenRefreshes.inc({ outcome }, 0)

  const clock = deps.clock ?? systemClock
  const databases = createDatabaseScrape(deps, metric, deps.scrapeTimeoutMs ?? 2_000, clock)

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
      databases.changed(e.db)
      switch (e.type) {
        case 'settled':
          metric.sends.inc({ db: e.db, outcome: e.outcome })
          // A row sent back from a paused mailbox (or to a reserved pacing turn) asked nobody: the
          // send that caused the pause counted. A refusal of the mailbox is no throttle: counted
          // apart, so "Mailbox throttled" does not fire for what "Mailbox refused" says. A wait by
          // its cause and service: Graph's outage (503) told from a throttle (429) and from Entra's by
          // "Graph turning sends away".
          if (
            e.outcome === 'throttled' &&
            e.code !== 'mailbox_paused' &&
            e.code !== 'mailbox_paced'
          ) {
            if (e.mailboxRefused) metric.mailboxRefused.inc({ db: e.db })
            else
              metric.throttled.inc({
                db: e.db,
                cause: throttleCause(e.code, e.httpStatus),
                service: throttleService(e.code),
              })
          }
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
      if (deps.credential)
        metric.credentialRefused.set(
          { credential: deps.credential.kind },
          deps.credential.refused() ? 1 : 0,
        )
      if (deps.providerOutage) {
        const now = deps.providerOutage()
        for (const cause of GRAPH_OUTAGE_CAUSES)
          metric.graphOutage.set({ cause }, now === cause ? 1 : 0)
      }
      await Promise.all(deps.databases.map((d) => databases.scrape(d.name)))
      return metric.registry.metrics()
    },
  }
}
