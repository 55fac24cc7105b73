// The only reader of the environment: validates every variable at once into a frozen Config.
import { isIP } from 'node:net'
import { parse as parseConnectionString } from 'pg-connection-string'
import { z } from 'zod'
import { AppError } from './errors.ts'
import type { Level } from './log.ts'

/** Every variable the binary reads, with its default; `--help` prints this table. */
export const ENV_VARS: readonly { name: string; default: string; meaning: string }[] = [
  { name: 'DATABASE_URL', default: '-', meaning: 'the database to drain (a pooled URL is fine)' },
  {
    name: 'LISTEN_DATABASE_URL',
    default: 'DATABASE_URL',
    meaning: 'direct (session) URL for LISTEN and migrations',
  },
  {
    name: 'MAILER_DATABASES',
    default: '-',
    meaning: 'JSON array for several databases: [{"name","url","listenUrl"?}]',
  },
  { name: 'MAIL_TRANSPORT', default: 'graph', meaning: 'graph | file | discard' },
  { name: 'MAIL_FILE_DIR', default: './mail-out', meaning: 'directory for the file transport' },
  { name: 'MAIL_FROM', default: '-', meaning: 'default sender mailbox (user id or UPN)' },
  { name: 'GRAPH_TENANT_ID', default: '-', meaning: 'Entra tenant (GUID or domain)' },
  { name: 'GRAPH_CLIENT_ID', default: '-', meaning: 'Entra app registration (client) id' },
  { name: 'GRAPH_CERTIFICATE', default: '-', meaning: 'PEM certificate (for the thumbprint)' },
  { name: 'GRAPH_CERTIFICATE_FILE', default: '-', meaning: 'path of the PEM certificate' },
  { name: 'GRAPH_PRIVATE_KEY', default: '-', meaning: 'PEM private key (PKCS#8)' },
  { name: 'GRAPH_PRIVATE_KEY_FILE', default: '-', meaning: 'path of the PEM private key' },
  { name: 'GRAPH_CLIENT_SECRET', default: '-', meaning: 'client secret, instead of a certificate' },
  {
    name: 'GRAPH_ASSERTION_ALGORITHM',
    default: 'PS256',
    meaning: 'PS256 (x5t#S256) or RS256 (x5t) for the client assertion',
  },
  {
    name: 'GRAPH_AUTHORITY_URL',
    default: 'https://login.microsoftonline.com',
    meaning: 'Entra authority (sovereign clouds, tests)',
  },
  {
    name: 'GRAPH_API_URL',
    default: 'https://graph.microsoft.com/v1.0',
    meaning: 'Graph base URL',
  },
  {
    name: 'GRAPH_SAVE_TO_SENT_ITEMS',
    default: 'true',
    meaning: 'keep a copy in the mailbox Sent Items',
  },
  {
    name: 'GRAPH_REQUEST_TIMEOUT_SECONDS',
    default: '30',
    meaning: 'deadline of one Graph request (must be well under the lease)',
  },
  {
    name: 'GRAPH_MAILBOX_LOOKUP',
    default: 'false',
    meaning: 'after a crash mid-send, look the message up in the mailbox (needs Mail.Read)',
  },
  {
    name: 'AMBIGUOUS_SEND_POLICY',
    default: 'resend',
    meaning: 'without lookup, a crash mid-send: resend (at-least-once) or hold (fail for review)',
  },
  {
    name: 'THROTTLE_DEADLINE_SECONDS',
    default: '86400',
    meaning:
      'a row throttled (waiting uncounted) for longer than this since its first throttle in a row fails',
  },
  { name: 'HOST', default: '0.0.0.0', meaning: 'HTTP listen address' },
  { name: 'PORT', default: '8080', meaning: 'HTTP listen port' },
  {
    name: 'METRICS_PORT',
    default: '-',
    meaning: '/metrics on this port only (a private one, e.g. 9091), not on PORT',
  },
  { name: 'API_JWT_SECRET', default: '-', meaning: 'HS256 secret for API bearer tokens' },
  { name: 'API_JWKS_URL', default: '-', meaning: 'JWKS URL for API bearer tokens' },
  { name: 'API_JWT_ISSUER', default: '-', meaning: 'required iss of API tokens' },
  { name: 'API_JWT_AUDIENCE', default: '-', meaning: 'required aud of API tokens' },
  { name: 'LOG_LEVEL', default: 'info', meaning: 'debug | info | warn | error' },
  { name: 'WORKER_CONCURRENCY', default: '10', meaning: 'sends in flight per process' },
  { name: 'LEASE_SECONDS', default: '60', meaning: 'lease length of a claimed row' },
  { name: 'HEARTBEAT_SECONDS', default: 'LEASE_SECONDS/3', meaning: 'lease heartbeat period' },
  { name: 'MAX_ATTEMPTS', default: '8', meaning: 'attempts for rows that set none' },
  {
    name: 'RETRY_BASE_SECONDS',
    default: '10',
    meaning: 'first retry delay; doubles per attempt, with jitter',
  },
  { name: 'RETRY_MAX_SECONDS', default: '3600', meaning: 'cap of the retry delay' },
  {
    name: 'POLL_INTERVAL_SECONDS',
    default: '30',
    meaning: 'backstop poll when no notification came (poll-only mode: 1s)',
  },
  {
    name: 'LISTEN_CHECK_SECONDS',
    default: '15',
    meaning: 'how often the LISTEN connection is checked for a half-open socket',
  },
  {
    name: 'LISTEN_MODE',
    default: 'auto',
    meaning: 'auto (LISTEN, fall back to polling) or poll (never LISTEN: transaction poolers)',
  },
  {
    name: 'SHUTDOWN_GRACE_SECONDS',
    default: '20',
    meaning: 'time in-flight sends get after SIGTERM',
  },
  {
    name: 'GRAPH_MAX_CONCURRENCY',
    default: '4',
    meaning: 'concurrent Graph requests per app across all workers',
  },
  {
    name: 'MAILBOX_RATE_PER_MINUTE',
    default: '30',
    meaning: 'sends per mailbox per minute across all workers (0 = no limit)',
  },
]

export interface DatabaseConfig {
  name: string
  url: string
  listenUrl: string
}

export interface GraphConfig {
  tenantId: string
  clientId: string
  certificate: string | null
  certificateFile: string | null
  privateKey: string | null
  privateKeyFile: string | null
  clientSecret: string | null
  assertionAlgorithm: 'PS256' | 'RS256'
  authorityUrl: string
  apiUrl: string
  saveToSentItems: boolean
  requestTimeoutMs: number
  mailboxLookup: boolean
  ambiguousSendPolicy: 'resend' | 'hold'
}

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

export interface ApiAuthConfig {
  jwtSecret: string | null
  jwksUrl: string | null
  issuer: string | null
  audience: string | null
}

export interface Config {
  databases: DatabaseConfig[]
  transport: 'graph' | 'file' | 'discard'
  fileDir: string
  mailFrom: string | null
  /** Set when MAIL_TRANSPORT=graph, except under role `api`, which sends nothing. */
  graph: GraphConfig | null
  /** metricsPort: /metrics is served there only (a port the platform keeps private), not on `port`. */
  http: { host: string; port: number; metricsPort: number | null }
  api: ApiAuthConfig
  logLevel: Level
  worker: WorkerConfig
  limits: { graphMaxConcurrency: number; mailboxRatePerMinute: number }
}

const optional = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()))
const int = (min: number, max: number) =>
  optional.pipe(
    z
      .string()
      .regex(/^-?\d+$/, 'must be a whole number')
      .transform(Number)
      .pipe(z.number().min(min).max(max))
      .optional(),
  )
const bool = optional.pipe(z.enum(['true', 'false', '1', '0']).optional())
/**
 * What is wrong with a database URL, in words that never repeat it (it may hold a password): what
 * the driver's own parser refuses, which would otherwise pass the start and fail every connection.
 * What it accepts stays accepted: no host (a Unix socket in ?host=, or PGHOST), no database name
 * (the user's), IPv6 hosts, percent-encoded passwords.
 */
export function databaseUrlProblem(value: string): string | null {
  if (!/^postgres(ql)?:\/\//.test(value)) return 'must be a postgres:// or postgresql:// URL'
  try {
    parseConnectionString(value)
  } catch {
    return 'is not a valid URL (check the host and port; a password must percent-encode @ : / # ?)'
  }
  return null
}

const pgUrl = z.string().superRefine((value, ctx) => {
  const problem = databaseUrlProblem(value)
  if (problem) ctx.addIssue({ code: 'custom', message: problem })
})
// RFC 1123 labels: anything else (an underscore, a URL, a port) fails only at bind, as "port in use?".
const HOSTNAME =
  /^(?=.{1,253}\.?$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i
// The address rule of mailer.is_email_address (and the renderer's): a MAIL_FROM it refuses would
// pass the start and then fail, for good, every row that names no sender of its own.
const EMAIL_ADDRESS =
  /^[^@\s<>(),;:"[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$/
const NAMED_ADDRESS = /^(.*)<([^<>]+)>\s*$/s
// Graph also names a mailbox by its user id; a file needs an address for its From header.
const GRAPH_USER_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

function isSenderMailbox(value: string, byId: boolean): boolean {
  if (byId && GRAPH_USER_ID.test(value)) return true
  const named = NAMED_ADDRESS.exec(value)
  return EMAIL_ADDRESS.test((named ? named[2] : value)?.trim() ?? '')
}

const httpUrl = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//.test(u), 'must be an http(s) URL')
  .transform((u) => u.replace(/\/+$/, ''))

const DatabasesJson = z
  .array(
    z
      .object({
        name: z.string().regex(/^[a-z0-9_-]{1,40}$/, 'must be 1-40 of a-z 0-9 _ -'),
        url: pgUrl,
        listenUrl: pgUrl.optional(),
      })
      .strict(),
  )
  .min(1, 'must list at least one database')

const Env = z.object({
  DATABASE_URL: optional.pipe(pgUrl.optional()),
  LISTEN_DATABASE_URL: optional.pipe(pgUrl.optional()),
  MAILER_DATABASES: optional,
  MAIL_TRANSPORT: optional.pipe(z.enum(['graph', 'file', 'discard']).default('graph')),
  MAIL_FILE_DIR: optional.pipe(z.string().default('./mail-out')),
  MAIL_FROM: optional,
  GRAPH_TENANT_ID: optional,
  GRAPH_CLIENT_ID: optional,
  GRAPH_CERTIFICATE: optional,
  GRAPH_CERTIFICATE_FILE: optional,
  GRAPH_PRIVATE_KEY: optional,
  GRAPH_PRIVATE_KEY_FILE: optional,
  GRAPH_CLIENT_SECRET: optional,
  GRAPH_ASSERTION_ALGORITHM: optional.pipe(z.enum(['PS256', 'RS256']).default('PS256')),
  GRAPH_AUTHORITY_URL: optional.pipe(httpUrl.default('https://login.microsoftonline.com')),
  GRAPH_API_URL: optional.pipe(httpUrl.default('https://graph.microsoft.com/v1.0')),
  GRAPH_SAVE_TO_SENT_ITEMS: bool,
  GRAPH_REQUEST_TIMEOUT_SECONDS: int(1, 600),
  GRAPH_MAILBOX_LOOKUP: bool,
  AMBIGUOUS_SEND_POLICY: optional.pipe(z.enum(['resend', 'hold']).default('resend')),
  THROTTLE_DEADLINE_SECONDS: int(60, 30 * 86400),
  HOST: optional.pipe(
    z
      .string()
      .refine(
        (h) => isIP(h.replace(/^\[(.*)\]$/, '$1')) !== 0 || HOSTNAME.test(h),
        'must be an IP address (0.0.0.0, ::) or a host name (letters, digits, hyphens, dots)',
      )
      .default('0.0.0.0'),
  ),
  PORT: int(0, 65535),
  METRICS_PORT: int(1, 65535),
  API_JWT_SECRET: optional.pipe(
    z.string().min(32, 'must be at least 32 characters (HS256 key)').optional(),
  ),
  API_JWKS_URL: optional.pipe(httpUrl.optional()),
  API_JWT_ISSUER: optional,
  API_JWT_AUDIENCE: optional,
  LOG_LEVEL: optional.pipe(z.enum(['debug', 'info', 'warn', 'error']).default('info')),
  WORKER_CONCURRENCY: int(1, 500),
  LEASE_SECONDS: int(5, 3600),
  HEARTBEAT_SECONDS: int(1, 1200),
  MAX_ATTEMPTS: int(1, 100),
  RETRY_BASE_SECONDS: int(1, 3600),
  RETRY_MAX_SECONDS: int(1, 7 * 86400),
  POLL_INTERVAL_SECONDS: int(1, 3600),
  LISTEN_CHECK_SECONDS: int(1, 600),
  LISTEN_MODE: optional.pipe(z.enum(['auto', 'poll']).default('auto')),
  SHUTDOWN_GRACE_SECONDS: int(0, 600),
  GRAPH_MAX_CONCURRENCY: int(1, 100),
  MAILBOX_RATE_PER_MINUTE: int(0, 100_000),
})

const truthy = (v: string | undefined, fallback: boolean) =>
  v === undefined ? fallback : v === 'true' || v === '1'

/** What `serve --role` runs: the role decides which settings are needed at all. */
export type ServeRole = 'all' | 'worker' | 'api'

export interface LoadOptions {
  /** Under `bun run dev` the API may run without auth. */
  dev?: boolean
  /**
   * Default `all`. Role `api` sends nothing, so the transport's own requirements (the Graph
   * credential, MAIL_FROM, the Graph timeout against the lease) are not asked of it.
   */
  role?: ServeRole
  /** Commands that never touch a database (e.g. check-config without --connect) still validate it. */
  requireDatabase?: boolean
}

/** Parses the environment; throws AppError('config_invalid') naming every problem, never a value. */
export function loadConfig(
  env: Record<string, string | undefined>,
  opts: LoadOptions = {},
): Config {
  // Each variable on its own: one malformed value must not hide the others (a missing DATABASE_URL,
  // the Graph credential), which a whole-object parse would leave unnamed until the next start.
  const problems: string[] = []
  const refused = new Set<string>()
  const values: Record<string, unknown> = {}
  for (const [name, schema] of Object.entries(Env.shape)) {
    const r = schema.safeParse(env[name])
    if (r.success) {
      values[name] = r.data
      continue
    }
    refused.add(name)
    for (const issue of r.error.issues) {
      problems.push(`${[name, ...issue.path].join('.')}: ${issue.message}`)
    }
    // Its default stands in, so the checks below run; a rule that involves it is skipped.
    values[name] = schema.safeParse(undefined).data
  }
  const e = values as z.output<typeof Env>
  const ok = (...names: string[]) => names.every((n) => !refused.has(n))

  const databases: DatabaseConfig[] = []
  if (e.MAILER_DATABASES !== undefined) {
    if (e.DATABASE_URL !== undefined || !ok('DATABASE_URL')) {
      problems.push('MAILER_DATABASES and DATABASE_URL are both set: use one of them')
    }
    // Applying it to every database would point them all at one; dropping it would LISTEN elsewhere.
    if (e.LISTEN_DATABASE_URL !== undefined || !ok('LISTEN_DATABASE_URL')) {
      problems.push(
        'LISTEN_DATABASE_URL is ignored with MAILER_DATABASES: give each database its own "listenUrl"',
      )
    }
    let json: unknown
    try {
      json = JSON.parse(e.MAILER_DATABASES)
    } catch {
      problems.push('MAILER_DATABASES: is not valid JSON')
    }
    if (json !== undefined) {
      const dbs = DatabasesJson.safeParse(json)
      if (!dbs.success) {
        for (const issue of dbs.error.issues) {
          problems.push(`MAILER_DATABASES[${issue.path.join('.')}]: ${issue.message}`)
        }
      } else {
        const names = new Set<string>()
        for (const d of dbs.data) {
          if (names.has(d.name)) problems.push(`MAILER_DATABASES: name "${d.name}" is repeated`)
          names.add(d.name)
          databases.push({ name: d.name, url: d.url, listenUrl: d.listenUrl ?? d.url })
        }
      }
    }
  } else if (e.DATABASE_URL !== undefined) {
    databases.push({
      name: 'default',
      url: e.DATABASE_URL,
      listenUrl: e.LISTEN_DATABASE_URL ?? e.DATABASE_URL,
    })
  } else if (opts.requireDatabase !== false && ok('DATABASE_URL')) {
    problems.push('DATABASE_URL (or MAILER_DATABASES) is required')
  }

  const leaseSeconds = e.LEASE_SECONDS ?? 60
  const heartbeatSeconds = e.HEARTBEAT_SECONDS ?? Math.max(1, Math.floor(leaseSeconds / 3))
  if (heartbeatSeconds * 2 > leaseSeconds && ok('LEASE_SECONDS', 'HEARTBEAT_SECONDS')) {
    problems.push('HEARTBEAT_SECONDS: must be at most half of LEASE_SECONDS')
  }
  if (e.METRICS_PORT !== undefined && e.METRICS_PORT === (e.PORT ?? 8080) && ok('PORT')) {
    problems.push('METRICS_PORT: must differ from PORT (leave it unset to serve /metrics on PORT)')
  }
  const requestTimeoutSeconds = e.GRAPH_REQUEST_TIMEOUT_SECONDS ?? 30
  const retryBaseSeconds = e.RETRY_BASE_SECONDS ?? 10
  const retryMaxSeconds = e.RETRY_MAX_SECONDS ?? 3600
  if (retryMaxSeconds < retryBaseSeconds && ok('RETRY_BASE_SECONDS', 'RETRY_MAX_SECONDS')) {
    problems.push('RETRY_MAX_SECONDS: must be at least RETRY_BASE_SECONDS')
  }

  // An API-only process never builds a transport: demanding a credential it never uses would make
  // the documented api/worker split hand the Graph secret to the API machines too.
  const sends = opts.role !== 'api'
  if (sends && e.MAIL_FROM !== undefined && ok('MAIL_TRANSPORT')) {
    // Only the file transport writes a From header; discard (a staging copy of a Graph deployment's
    // settings) takes what Graph takes.
    const byId = e.MAIL_TRANSPORT !== 'file'
    if (!isSenderMailbox(e.MAIL_FROM, byId)) {
      problems.push(
        `MAIL_FROM: must be an e-mail address ("Name <address>" is fine)${byId ? ' or a Graph user id (a GUID)' : ''}`,
      )
    }
  }
  let graph: GraphConfig | null = null
  if (e.MAIL_TRANSPORT === 'graph' && sends && ok('MAIL_TRANSPORT')) {
    if (!e.GRAPH_TENANT_ID) problems.push('GRAPH_TENANT_ID is required with MAIL_TRANSPORT=graph')
    if (!e.GRAPH_CLIENT_ID) problems.push('GRAPH_CLIENT_ID is required with MAIL_TRANSPORT=graph')
    if (!e.MAIL_FROM) problems.push('MAIL_FROM is required with MAIL_TRANSPORT=graph')
    // Only a Graph request can outlive its lease; the file and discard transports make none.
    if (
      requestTimeoutSeconds * 2 > leaseSeconds &&
      ok('GRAPH_REQUEST_TIMEOUT_SECONDS', 'LEASE_SECONDS')
    ) {
      problems.push('GRAPH_REQUEST_TIMEOUT_SECONDS: must be at most half of LEASE_SECONDS')
    }
    const cert = e.GRAPH_CERTIFICATE ?? e.GRAPH_CERTIFICATE_FILE
    const key = e.GRAPH_PRIVATE_KEY ?? e.GRAPH_PRIVATE_KEY_FILE
    if (e.GRAPH_CERTIFICATE && e.GRAPH_CERTIFICATE_FILE) {
      problems.push('GRAPH_CERTIFICATE and GRAPH_CERTIFICATE_FILE are both set: use one')
    }
    if (e.GRAPH_PRIVATE_KEY && e.GRAPH_PRIVATE_KEY_FILE) {
      problems.push('GRAPH_PRIVATE_KEY and GRAPH_PRIVATE_KEY_FILE are both set: use one')
    }
    if (e.GRAPH_CLIENT_SECRET && (cert || key)) {
      problems.push('GRAPH_CLIENT_SECRET and a certificate are both set: use one credential')
    } else if (!e.GRAPH_CLIENT_SECRET && !(cert && key)) {
      problems.push(
        'a Graph credential is required: GRAPH_CERTIFICATE(_FILE) with GRAPH_PRIVATE_KEY(_FILE), or GRAPH_CLIENT_SECRET',
      )
    }
    if (truthy(e.GRAPH_MAILBOX_LOOKUP, false) && !truthy(e.GRAPH_SAVE_TO_SENT_ITEMS, true)) {
      problems.push(
        'GRAPH_MAILBOX_LOOKUP=true needs GRAPH_SAVE_TO_SENT_ITEMS=true: the lookup finds sent messages in Sent Items',
      )
    }
    graph = {
      tenantId: e.GRAPH_TENANT_ID ?? '',
      clientId: e.GRAPH_CLIENT_ID ?? '',
      certificate: e.GRAPH_CERTIFICATE ?? null,
      certificateFile: e.GRAPH_CERTIFICATE_FILE ?? null,
      privateKey: e.GRAPH_PRIVATE_KEY ?? null,
      privateKeyFile: e.GRAPH_PRIVATE_KEY_FILE ?? null,
      clientSecret: e.GRAPH_CLIENT_SECRET ?? null,
      assertionAlgorithm: e.GRAPH_ASSERTION_ALGORITHM,
      authorityUrl: e.GRAPH_AUTHORITY_URL,
      apiUrl: e.GRAPH_API_URL,
      saveToSentItems: truthy(e.GRAPH_SAVE_TO_SENT_ITEMS, true),
      requestTimeoutMs: requestTimeoutSeconds * 1000,
      mailboxLookup: truthy(e.GRAPH_MAILBOX_LOOKUP, false),
      ambiguousSendPolicy: e.AMBIGUOUS_SEND_POLICY,
    }
  }

  if (e.API_JWT_SECRET && e.API_JWKS_URL) {
    problems.push('API_JWT_SECRET and API_JWKS_URL are both set: use one')
  }
  if (e.API_JWKS_URL && (!e.API_JWT_ISSUER || !e.API_JWT_AUDIENCE)) {
    problems.push('API_JWKS_URL needs API_JWT_ISSUER and API_JWT_AUDIENCE to pin the tokens')
  }

  if (problems.length > 0) throw configError(problems)

  return deepFreeze({
    databases,
    transport: e.MAIL_TRANSPORT,
    fileDir: e.MAIL_FILE_DIR,
    mailFrom: e.MAIL_FROM ?? null,
    graph,
    http: { host: e.HOST, port: e.PORT ?? 8080, metricsPort: e.METRICS_PORT ?? null },
    api: {
      jwtSecret: e.API_JWT_SECRET ?? null,
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
  })
}

function configError(problems: string[]) {
  return new AppError(
    'config_invalid',
    `invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
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
