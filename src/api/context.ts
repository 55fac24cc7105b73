// What the HTTP layer is given (ApiDeps) and what each request carries through Hono (AppEnv).
import type { Kysely } from 'kysely'
import type pg from 'pg'
import type { Clock } from '../clock.ts'
import type { ApiAuthConfig } from '../config.ts'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import type { HealthSource } from '../outbox/health.ts'
import type { LargeBodySlots } from './large-body-slots.ts'
import type { Metrics } from './metrics.ts'

export interface ApiDatabase {
  name: string
  db: Kysely<Database>
  pool: pg.Pool
}

export interface ApiDeps {
  databases: ReadonlyArray<ApiDatabase>
  auth: ApiAuthConfig
  /** `bun run dev`: the API may run without auth (every caller gets both scopes, no tenant). */
  dev: boolean
  health: HealthSource
  metrics: Metrics
  log: Logger
  version: string
  /**
   * MAIL_FROM_ALLOWED: the only mailboxes an enqueued message may name in `from` (senderKey's
   * keys); null or absent, any. The workers hold rows written through SQL to it at send.
   */
  allowedSenders?: ReadonlySet<string> | null
  /**
   * MAIL_FROM: the sender GET /v1/outbox/{id} renders a row naming none with, as its worker does;
   * null or absent, such a row shows no_sender.
   */
  mailFrom?: string | null
  /**
   * Why mailFrom does not tell the workers' (serve --role api: row-rendering.ts
   * mailFromUnknownHere): GET /v1/outbox/{id} shows a row naming no sender with `from` null and
   * this; null or absent, mailFrom is theirs.
   */
  mailFromUnknown?: string | null
  /**
   * The process's slots for bodies past 4 MiB (large-body-slots.ts); absent, the app makes its
   * own (serve makes one app per process).
   */
  largeBodySlots?: LargeBodySlots
  /** Requests per minute per token subject; default 600, 0 disables the limit. */
  rateLimitPerMinute?: number
  /** `operations` serves only health, readiness and metrics (`serve --role worker`): no auth needed. */
  surface?: 'all' | 'operations'
  /** /metrics has a listener of its own (METRICS_PORT): this app does not serve it. */
  metricsApart?: boolean
  /**
   * What tokens' exp and nbf, and the rate limit's refill, are judged by; its monotonic readings
   * time the signing keys' outage run and an oldest-first page's wait for open writers, which
   * sleeps on it. Default the system clock.
   */
  clock?: Pick<Clock, 'now' | 'monotonic' | 'sleep'>
}

export type Scope = 'outbox:read' | 'outbox:write'

export interface Principal {
  /** The token's `sub` (or a hash of the token when it has none): the rate-limit key. Never logged. */
  subject: string
  scopes: ReadonlySet<string>
  /** From the `tenant` claim: when set, every query is confined to this tenant. */
  tenant: string | null
  /** From the `db` claim: when set, only this configured database is reached (database-claim.ts). */
  database: string | null
  /**
   * From the `senders` claim: when set, an enqueued message may name only these mailboxes in
   * `from` (senderKey's keys), as MAIL_FROM_ALLOWED confines every caller.
   */
  senders: ReadonlySet<string> | null
}

export interface AppEnv {
  Variables: {
    requestId: string
    log: Logger
    principal: Principal
    database: ApiDatabase
  }
}

/** statement_timeout of inspection and single-row writes. */
export const QUERY_TIMEOUT_MS = 5_000
/** Bulk actions touch up to 1000 rows; they get longer. */
export const BULK_TIMEOUT_MS = 30_000
