// Each environment variable parsed on its own: its form, its range, its default.
import { z } from 'zod'
import { pgUrl } from './database-url.ts'
import { invisibleCharacterProblem } from './invisible-character.ts'
import { listenHost } from './listen-host.ts'
import { secondsWritten } from './seconds-written.ts'

const optional = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()))
/** LEASE_SECONDS's largest: another worker's registry entry that notes no lease is judged by it. */
export const LONGEST_LEASE_SECONDS = 3600
/** MIGRATE_DEADLINE_SECONDS's and --deadline's largest, a day: a timer past 2^31 - 1 ms fires at once. */
export const LONGEST_MIGRATE_DEADLINE_SECONDS = 86400

// A refusal says what the variable takes, never zod's "Too small: expected number to be >=1": its
// range, and for a duration (`seconds`) that it is written without a unit, with what 90s would be.
const int = (min: number, max: number, unit?: 'seconds') =>
  optional.pipe(
    z
      .string()
      .transform((v, ctx) => {
        if (!/^-?\d+$/.test(v)) {
          const seconds = unit ? secondsWritten(v, min, max) : null
          ctx.addIssue({
            code: 'custom',
            message: unit
              ? `must be a whole number of seconds from ${min} to ${max}, without a unit${seconds === null ? '' : ` (${v} is ${seconds})`}`
              : `must be a whole number from ${min} to ${max}`,
          })
          return z.NEVER
        }
        const n = Number(v)
        if (n < min || n > max) {
          ctx.addIssue({ code: 'custom', message: `must be from ${min} to ${max}` })
          return z.NEVER
        }
        // -0 is 0: a port or a count, never a sign.
        return n === 0 ? 0 : n
      })
      .optional(),
  )
/** One of a closed set of words, named as such when refused (not zod's `"a"|"b"`). */
const choice = <const T extends readonly [string, ...string[]]>(words: T) =>
  z.enum(words, { error: `must be one of ${words.join(', ')}` })
const bool = optional.pipe(
  z.enum(['true', 'false', '1', '0'], { error: 'must be true or false (or 1 or 0)' }).optional(),
)
// One check, so a value that is no URL at all is named once, not as "Invalid URL" and as this too.
const isHttpUrl = (u: string) => {
  try {
    return /^https?:$/.test(new URL(u).protocol) && /^https?:\/\//i.test(u)
  } catch {
    return false
  }
}
const httpUrl = z
  .string()
  .refine(isHttpUrl, 'must be an http(s) URL')
  .transform((u) => u.replace(/\/+$/, ''))

const Env = z.object({
  DATABASE_URL: optional.pipe(pgUrl.optional()),
  LISTEN_DATABASE_URL: optional.pipe(pgUrl.optional()),
  MAILER_DATABASES: optional,
  MAIL_TRANSPORT: optional.pipe(choice(['graph', 'file', 'discard']).default('graph')),
  MAIL_FILE_DIR: optional.pipe(z.string().default('./mail-out')),
  MAIL_FROM: optional,
  MAIL_FROM_ALLOWED: optional,
  GRAPH_TENANT_ID: optional,
  GRAPH_CLIENT_ID: optional,
  GRAPH_CERTIFICATE: optional,
  GRAPH_CERTIFICATE_FILE: optional,
  GRAPH_PRIVATE_KEY: optional,
  GRAPH_PRIVATE_KEY_FILE: optional,
  GRAPH_CLIENT_SECRET: optional,
  GRAPH_ASSERTION_ALGORITHM: optional.pipe(choice(['PS256', 'RS256']).default('PS256')),
  GRAPH_AUTHORITY_URL: optional.pipe(httpUrl.default('https://login.microsoftonline.com')),
  GRAPH_API_URL: optional.pipe(httpUrl.default('https://graph.microsoft.com/v1.0')),
  GRAPH_SAVE_TO_SENT_ITEMS: bool,
  GRAPH_REQUEST_TIMEOUT_SECONDS: int(1, 600, 'seconds'),
  GRAPH_MAILBOX_LOOKUP: bool,
  AMBIGUOUS_SEND_POLICY: optional.pipe(choice(['resend', 'hold']).default('resend')),
  THROTTLE_DEADLINE_SECONDS: int(60, 30 * 86400, 'seconds'),
  HOST: optional.pipe(listenHost.default('0.0.0.0')),
  PORT: int(0, 65535),
  METRICS_PORT: int(0, 65535),
  API_JWT_SECRET: optional.pipe(
    z.string().min(32, 'must be at least 32 characters (HS256 key)').optional(),
  ),
  API_JWT_SECRET_PREVIOUS: optional.pipe(
    z.string().min(32, 'must be at least 32 characters (HS256 key)').optional(),
  ),
  API_JWKS_URL: optional.pipe(httpUrl.optional()),
  API_JWT_ISSUER: optional,
  API_JWT_AUDIENCE: optional,
  LOG_LEVEL: optional.pipe(choice(['debug', 'info', 'warn', 'error']).default('info')),
  WORKER_CONCURRENCY: int(1, 500),
  LEASE_SECONDS: int(5, LONGEST_LEASE_SECONDS, 'seconds'),
  HEARTBEAT_SECONDS: int(1, 1200, 'seconds'),
  MAX_ATTEMPTS: int(1, 100),
  RETRY_BASE_SECONDS: int(1, 3600, 'seconds'),
  RETRY_MAX_SECONDS: int(1, 7 * 86400, 'seconds'),
  POLL_INTERVAL_SECONDS: int(1, 3600, 'seconds'),
  LISTEN_CHECK_SECONDS: int(1, 600, 'seconds'),
  LISTEN_MODE: optional.pipe(choice(['auto', 'poll']).default('auto')),
  SHUTDOWN_GRACE_SECONDS: int(0, 600, 'seconds'),
  GRAPH_MAX_CONCURRENCY: int(1, 100),
  MAILBOX_RATE_PER_MINUTE: int(0, 100_000),
  MIGRATE_DEADLINE_SECONDS: int(0, LONGEST_MIGRATE_DEADLINE_SECONDS, 'seconds'),
})

export type EnvValues = z.output<typeof Env>

/**
 * The kind of quotes a value (trimmed) opens and closes with, or null. No variable is meant to hold
 * one in both places: a sender's display name in quotes is followed by its <address>.
 */
function wrappingQuotes(v: string | undefined): 'double' | 'single' | null {
  const t = v?.trim() ?? ''
  if (t.length < 2) return null
  if (t.startsWith('"') && t.endsWith('"')) return 'double'
  if (t.startsWith("'") && t.endsWith("'")) return 'single'
  return null
}

/** Whether every named variable parsed: a rule that involves a refused one is skipped. */
export type Accepted = (...names: string[]) => boolean

/** Parses every variable; a refused one is named in `problems` and its default stands in. */
export function parseVariables(env: Record<string, string | undefined>): {
  values: EnvValues
  problems: string[]
  ok: Accepted
} {
  // Each variable on its own: one malformed value must not hide the others (a missing DATABASE_URL,
  // the Graph credential), which a whole-object parse would leave unnamed until the next start.
  const problems: string[] = []
  const refused = new Set<string>()
  const values: Record<string, unknown> = {}
  for (const [name, schema] of Object.entries(Env.shape)) {
    const quotes = wrappingQuotes(env[name])
    if (quotes) {
      // Taken as the value, they were accepted (a tenant id, a secret) and failed only at the first
      // token or API call, or named as a malformed value (a URL) without saying why.
      refused.add(name)
      problems.push(
        `${name}: its value is wrapped in ${quotes} quotes, which are kept as part of it: set it without them (a shell removes its own quotes; a dashboard’s secret field or an env file keeps them)`,
      )
      values[name] = schema.safeParse(undefined).data
      continue
    }
    const invisible = env[name] === undefined ? null : invisibleCharacterProblem(name, env[name])
    if (invisible) {
      // Taken, it failed where the value is used (a token, a send, a connection), quoting a value
      // that looks right; parsed, it would be named as malformed without saying why.
      refused.add(name)
      problems.push(invisible)
      values[name] = schema.safeParse(undefined).data
      continue
    }
    const r = schema.safeParse(env[name])
    if (r.success) {
      values[name] = r.data
      continue
    }
    refused.add(name)
    for (const issue of r.error.issues) {
      problems.push(`${[name, ...issue.path].join('.')}: ${issue.message}`)
    }
    // Its default stands in, so the cross-variable checks run; a rule that involves it is skipped.
    values[name] = schema.safeParse(undefined).data
  }
  return {
    values: values as EnvValues,
    problems,
    ok: (...names) => names.every((n) => !refused.has(n)),
  }
}
