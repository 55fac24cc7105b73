// The only reader of the environment: validates every variable at once into a frozen Config.
import { parseAllowedSenders } from './config/allowed-senders.ts'
import { type ApiAuthConfig, apiAuthProblems } from './config/api-auth.ts'
import { type DatabaseConfig, databaseList } from './config/database-list.ts'
import { parseVariables } from './config/env-schema.ts'
import { type GraphConfig, graphSettings } from './config/graph-settings.ts'
import { heartbeatSetting } from './config/lease-timing.ts'
import { mailFromProblem } from './config/sender-mailbox.ts'
import { unknownVariables, unknownVariableText } from './config/unknown-variables.ts'
import { AppError } from './errors.ts'
import type { Level } from './log.ts'

export type { ApiAuthConfig }

export interface WorkerConfig {
  concurrency: number
  leaseSeconds: number
  heartbeatSeconds: number
  maxAttempts: number
  retryBaseSeconds: number
  retryMaxSeconds: number
  pollIntervalSeconds: number
  listenCheckSeconds: number
  listenMode: 'auto' | 'poll'
  shutdownGraceSeconds: number
  throttleDeadlineSeconds: number
}

export interface Config {
  databases: DatabaseConfig[]
  transport: 'graph' | 'file' | 'discard'
  fileDir: string
  mailFrom: string | null
  /**
   * MAIL_FROM_ALLOWED: the mailboxes a row may name in `from` (keys of allowed-senders.ts), checked
   * at enqueue through the API and at send; null when unset (any the app may send as).
   */
  allowedSenders: ReadonlySet<string> | null
  /** Set when MAIL_TRANSPORT=graph, except under role `api`, which sends nothing. */
  graph: GraphConfig | null
  /** metricsPort: /metrics is served there only (a port the platform keeps private), not on `port`. */
  http: { host: string; port: number; metricsPort: number | null }
  api: ApiAuthConfig
  logLevel: Level
  worker: WorkerConfig
  limits: { graphMaxConcurrency: number; mailboxRatePerMinute: number }
  /** MIGRATE_DEADLINE_SECONDS: `migrate`'s whole run (migrate-every.ts), 0 for none. */
  migrate: { deadlineSeconds: number }
}

/** What `serve --role` runs: the role decides which settings are needed at all. */
export type ServeRole = 'all' | 'worker' | 'api'

interface LoadOptions {
  /** Under `bun run dev` the API may run without auth. */
  dev?: boolean
  /**
   * Default `all`. Role `api` sends nothing, so the transport's own requirements (the Graph
   * credential, MAIL_FROM, the Graph timeout against the lease) are not asked of it.
   */
  role?: ServeRole
  /** Commands that never touch a database (e.g. check-config without --connect) still validate it. */
  requireDatabase?: boolean
  /**
   * This process serves the /v1 API (`serve`, role all or api): it needs auth, except under dev.
   * Asked here so it is named with every other problem, not in a second refusal after they are fixed.
   */
  servesApi?: boolean
  /**
   * Default true. `send-test` claims no row: it holds no lease and never heartbeats, so the rules of
   * the heartbeat and the Graph timeout against the lease are not asked of it (check-config asks them).
   */
  holdsLeases?: boolean
}

/** Parses the environment; throws AppError('config_invalid') naming every problem, never a value. */
export function loadConfig(
  env: Record<string, string | undefined>,
  opts: LoadOptions = {},
): Config {
  const { values: e, problems, ok } = parseVariables(env)

  const { databases, problems: databaseProblems } = databaseList(
    e,
    ok,
    opts.requireDatabase !== false,
  )
  problems.push(...databaseProblems)

  const leaseSeconds = e.LEASE_SECONDS ?? 60
  // 0 beside 0 is two ports, each the system's choice.
  const samePort = e.METRICS_PORT !== 0 && e.METRICS_PORT === (e.PORT ?? 8080)
  if (e.METRICS_PORT !== undefined && samePort && ok('PORT')) {
    problems.push('METRICS_PORT: must differ from PORT (leave it unset to serve /metrics on PORT)')
  }
  const retryBaseSeconds = e.RETRY_BASE_SECONDS ?? 10
  const retryMaxSeconds = e.RETRY_MAX_SECONDS ?? 3600
  if (retryMaxSeconds < retryBaseSeconds && ok('RETRY_BASE_SECONDS', 'RETRY_MAX_SECONDS')) {
    problems.push('RETRY_MAX_SECONDS: must be at least RETRY_BASE_SECONDS')
  }

  // An API-only process never builds a transport: demanding a credential it never uses would make
  // the documented api/worker split hand the Graph secret to the API machines too.
  const sends = opts.role !== 'api'
  if (sends && e.MAIL_FROM !== undefined && ok('MAIL_TRANSPORT')) {
    const problem = mailFromProblem(e.MAIL_FROM, e.MAIL_TRANSPORT)
    if (problem) problems.push(problem)
  }
  // Every role: the API refuses at enqueue what the workers would refuse at send.
  const senders = parseAllowedSenders(e.MAIL_FROM_ALLOWED)
  problems.push(...senders.problems)
  let graph: GraphConfig | null = null
  const leases = opts.holdsLeases !== false
  if (e.MAIL_TRANSPORT === 'graph' && sends && ok('MAIL_TRANSPORT')) {
    const settings = graphSettings(e, ok, leases ? leaseSeconds : null)
    problems.push(...settings.problems)
    graph = settings.graph
  }
  const heartbeat = heartbeatSetting(
    e,
    ok,
    leaseSeconds,
    graph === null ? null : graph.requestTimeoutMs / 1000,
  )
  if (leases) problems.push(...heartbeat.problems)
  const { heartbeatSeconds } = heartbeat

  problems.push(...apiAuthProblems(e, ok, opts))

  if (problems.length > 0) throw configError(problems, env)

  return deepFreeze({
    databases,
    transport: e.MAIL_TRANSPORT,
    fileDir: e.MAIL_FILE_DIR,
    mailFrom: e.MAIL_FROM ?? null,
    allowedSenders: senders.allowed,
    graph,
    http: { host: e.HOST, port: e.PORT ?? 8080, metricsPort: e.METRICS_PORT ?? null },
    api: {
      jwtSecret: e.API_JWT_SECRET ?? null,
      jwtSecretPrevious: e.API_JWT_SECRET_PREVIOUS ?? null,
      jwksUrl: e.API_JWKS_URL ?? null,
      issuer: e.API_JWT_ISSUER ?? null,
      audience: e.API_JWT_AUDIENCE ?? null,
    },
    logLevel: e.LOG_LEVEL,
    worker: {
      concurrency: e.WORKER_CONCURRENCY ?? 10,
      leaseSeconds,
      heartbeatSeconds,
      maxAttempts: e.MAX_ATTEMPTS ?? 8,
      retryBaseSeconds,
      retryMaxSeconds,
      pollIntervalSeconds: e.POLL_INTERVAL_SECONDS ?? 30,
      listenCheckSeconds: e.LISTEN_CHECK_SECONDS ?? 15,
      listenMode: e.LISTEN_MODE,
      shutdownGraceSeconds: e.SHUTDOWN_GRACE_SECONDS ?? 20,
      throttleDeadlineSeconds: e.THROTTLE_DEADLINE_SECONDS ?? 86400,
    },
    limits: {
      graphMaxConcurrency: e.GRAPH_MAX_CONCURRENCY ?? 4,
      mailboxRatePerMinute: e.MAILBOX_RATE_PER_MINUTE ?? 30,
    },
    // 270 s: Fly ends a release command at 5 minutes (release_command_timeout's default) without
    // a word of ours; this leaves the cancel's grace and the message 30 s within it.
    migrate: { deadlineSeconds: e.MIGRATE_DEADLINE_SECONDS ?? 270 },
  })
}

/**
 * A variable set but never read is named after the problems (not as one: it refuses nothing), since
 * it often explains one: MAIL_FORM set is why MAIL_FROM is "required".
 */
function configError(problems: string[], env: Record<string, string | undefined>) {
  const ignored = unknownVariables(env).map((v) => `  (${unknownVariableText(v)})`)
  return new AppError(
    'config_invalid',
    ['invalid configuration:', ...problems.map((p) => `  - ${p}`), ...ignored].join('\n'),
    { problems },
  )
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v)
    Object.freeze(o)
  }
  return o
}
