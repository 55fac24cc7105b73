// `check-config [--connect]`: validates the environment and, on request, reaches every database and Entra.
import { decodeJwt } from 'jose'
import pg from 'pg'
import { systemClock } from './clock.ts'
import type { DatabaseConfig } from './config/database-list.ts'
import { type Config, loadConfig, type ServeRole } from './config.ts'
import { hearsOtherSessions } from './db/listen-probe.ts'
import { assertSchemaCurrent } from './db/migrate.ts'
import { isAppError } from './errors.ts'
import { silentLogger } from './log.ts'
import { CHANNEL, listeningPid } from './outbox/listener.ts'
import { type GraphCredential, loadGraphCredential } from './transport/graph-credential.ts'
import {
  createTokenSource,
  GraphAuthError,
  graphScopeFor,
  tokenUrlFor,
} from './transport/graph-token.ts'

export interface CheckConfigOptions {
  /** Also reach every database (select 1, schema status) and fetch a Graph token. */
  connect: boolean
  fetch?: typeof fetch
  /** The role the deployment will serve; the API (all, api) refuses to start without auth. */
  role?: ServeRole
  now?: () => number
  /** Per network step; a pre-deploy check should fail fast rather than hang a pipeline. */
  timeoutMs?: number
}

export interface CheckConfigResult {
  ok: boolean
  problems: string[]
  checks: string[]
}

/** Warns this long before a certificate expires: enough time to register and roll a second one. */
const CERT_EXPIRY_WARNING_DAYS = 30
const DAY_MS = 86_400_000

// Schema states a deploy fixes by itself (release_command runs migrate); the others need a human.
const SCHEMA_PENDING = new Set(['schema_missing', 'schema_outdated'])

/** Never throws: every failure becomes a named problem, and no value of a secret is ever echoed. */
export async function checkConfig(
  env: Record<string, string | undefined>,
  o: CheckConfigOptions,
): Promise<CheckConfigResult> {
  const problems: string[] = []
  const checks: string[] = []
  const redact = redactor(env)
  const now = o.now ?? Date.now
  const timeoutMs = o.timeoutMs ?? 10_000

  // Checked from the raw environment too, so it is named even when loadConfig finds other problems.
  const role = o.role ?? 'all'
  const hasAuth = Boolean(env.API_JWT_SECRET?.trim() || env.API_JWKS_URL?.trim())
  if (role !== 'worker' && !hasAuth) {
    problems.push(
      `API_JWT_SECRET or API_JWKS_URL is required: serve --role ${role} refuses to start the API without auth`,
    )
  }

  let config: Config
  try {
    // The role's own requirements, as serve applies them: an API-only process needs no transport.
    config = loadConfig(env, { role })
  } catch (e) {
    problems.push(...problemsOf(e).map(redact))
    return { ok: false, problems, checks }
  }
  checks.push(
    `configuration: valid (${config.databases.length} database(s): ${config.databases
      .map((d) => d.name)
      .join(
        ', ',
      )}; ${role === 'api' ? 'no transport: --role api sends nothing' : `transport ${config.transport}`})`,
  )

  if (role !== 'worker') {
    if (config.api.jwtSecret) checks.push('API auth: HS256 bearer tokens (API_JWT_SECRET)')
    else if (config.api.jwksUrl) checks.push('API auth: bearer tokens verified with API_JWKS_URL')
  }

  let credential: GraphCredential | null = null
  if (config.graph) {
    try {
      credential = loadGraphCredential(config.graph, now())
      checks.push(...describeCredential(credential, now()))
    } catch (e) {
      problems.push(...problemsOf(e).map(redact))
    }
  }

  if (o.connect) {
    for (const d of config.databases) {
      const r = await checkDatabase(d, config, role, timeoutMs)
      problems.push(...r.problems.map(redact))
      checks.push(...r.checks.map(redact))
    }
    if (config.graph && credential) {
      const r = await checkGraphToken(config, credential, o.fetch ?? fetch, timeoutMs)
      problems.push(...r.problems.map(redact))
      checks.push(...r.checks.map(redact))
    }
    if (role !== 'worker' && config.api.jwksUrl) {
      const r = await checkJwks(config.api.jwksUrl, o.fetch ?? fetch, timeoutMs)
      problems.push(...r.problems.map(redact))
      checks.push(...r.checks.map(redact))
    }
  } else {
    checks.push('network: not checked (pass --connect to reach the databases and Entra)')
  }

  return { ok: problems.length === 0, problems, checks }
}

interface Findings {
  problems: string[]
  checks: string[]
}

function problemsOf(e: unknown): string[] {
  if (isAppError(e)) {
    const listed = e.details?.problems
    if (Array.isArray(listed) && listed.every((p) => typeof p === 'string')) return listed
    return [e.message]
  }
  return [e instanceof Error ? e.message : String(e)]
}

function describeCredential(c: GraphCredential, now: number): string[] {
  if (c.info.kind === 'secret') return ['Graph credential: client secret (GRAPH_CLIENT_SECRET)']
  const days = Math.floor((c.info.notAfter - now) / DAY_MS)
  // Entra's portal lists certificates by their SHA-1 thumbprint in upper-case hex.
  const portalThumbprint = Buffer.from(c.info.x5t, 'base64url').toString('hex').toUpperCase()
  const lines = [
    `Graph credential: certificate ${portalThumbprint} (as the Entra portal shows it), key matches, ` +
      `valid until ${new Date(c.info.notAfter).toISOString()}, assertion ${c.info.algorithm}`,
  ]
  if (days < CERT_EXPIRY_WARNING_DAYS) {
    lines.push(
      `warning: the Graph certificate expires in ${days} day(s): register a new one and rotate (deploy/README.md)`,
    )
  }
  return lines
}

async function checkDatabase(
  d: DatabaseConfig,
  config: Config,
  role: ServeRole,
  timeoutMs: number,
) {
  const out: Findings = { problems: [], checks: [] }
  const label = (which: 'url' | 'listenUrl') => {
    if (config.databases.length === 1 && d.name === 'default') {
      return which === 'url' ? 'DATABASE_URL' : 'LISTEN_DATABASE_URL'
    }
    return `MAILER_DATABASES ${d.name}.${which}`
  }
  const pool = new pg.Pool({
    connectionString: d.url,
    application_name: 'outbox-mailer:check-config',
    max: 1,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
  })
  // A refused or dropped connection surfaces through the query; the pool's own event must not crash us.
  pool.on('error', () => {})
  let reachable = false
  try {
    const { rows } = await pool.query<{ version: string }>(
      `select current_setting('server_version') as version`,
    )
    reachable = true
    out.checks.push(
      `database "${d.name}" (${label('url')}): reachable, PostgreSQL ${rows[0]?.version}`,
    )
    try {
      const { newer } = await assertSchemaCurrent(pool, d.name)
      out.checks.push(
        `database "${d.name}": schema current${newer.length ? ` (also has ${newer.join(', ')} from a newer release, which this one works with)` : ''}`,
      )
    } catch (e) {
      if (isAppError(e) && SCHEMA_PENDING.has(e.code)) {
        // Normal before a deploy that brings a migration: release_command applies it.
        out.checks.push(`warning: ${e.message} (the release_command does this on deploy)`)
      } else {
        out.problems.push(`database "${d.name}": ${describe(e)}`)
      }
    }
  } catch (e) {
    out.problems.push(`database "${d.name}" (${label('url')}): cannot connect: ${describe(e)}`)
  } finally {
    await pool.end().catch(() => {})
  }

  // A URL of its own is for LISTEN and migrations, both needing a session; the one URL is listened
  // on only by a role that listens, unless LISTEN_MODE=poll says the deployment polls on purpose.
  const apart = d.listenUrl !== d.url
  const listens = role !== 'api' && config.worker.listenMode === 'auto'
  const which = label(apart ? 'listenUrl' : 'url')
  if (apart || (listens && reachable)) {
    const client = new pg.Client({
      connectionString: d.listenUrl,
      application_name: 'outbox-mailer:check-config',
      connectionTimeoutMillis: timeoutMs,
      query_timeout: timeoutMs,
    })
    client.on('error', () => {})
    let connected = false
    try {
      await client.connect()
      connected = true
      // A transaction pooler accepts the LISTEN and loses it with its session: asked as serve asks.
      await client.query(`listen ${CHANNEL}`)
      const pid = await listeningPid(client, timeoutMs)
      const holds =
        pid !== null &&
        (await hearsOtherSessions(client, {
          url: d.listenUrl,
          backendPid: pid,
          applicationName: 'outbox-mailer:check-config',
          timeoutMs,
        })) !== false
      await client.query('unlisten *')
      if (!holds) {
        out.problems.push(
          `database "${d.name}" (${which}): LISTEN does not hold on this connection (a transaction pooler?)${listens ? ': serve would poll instead of being woken' : ''}. ${apart ? `${which} must be a direct (session) URL, for LISTEN and migrations` : `Give this database a direct (session) URL to listen on (${label('listenUrl')}), or set LISTEN_MODE=poll to poll on purpose`}`,
        )
      } else {
        out.checks.push(
          `database "${d.name}" (${which}): ${apart ? 'reachable, ' : ''}LISTEN holds`,
        )
      }
    } catch (e) {
      out.problems.push(
        `database "${d.name}" (${which}): ${connected ? 'LISTEN could not be checked' : 'cannot connect'}: ${describe(e)}`,
      )
    } finally {
      await client.end().catch(() => {})
    }
  }
  return out
}

// Hints for the Entra errors a first deploy meets; graph.md §1.3 lists the codes.
const TOKEN_HINTS: Record<string, string> = {
  AADSTS700027:
    'the certificate is not registered on the app: upload GRAPH_CERTIFICATE to the app registration',
  AADSTS7000215: 'the client secret is wrong: copy the secret value, not its id',
  AADSTS7000222: 'the client secret has expired: create a new one',
  AADSTS700016: 'no such app in this tenant: check GRAPH_CLIENT_ID and GRAPH_TENANT_ID',
  AADSTS90002: 'no such tenant: check GRAPH_TENANT_ID',
  AADSTS7000112: 'the app registration is disabled',
}

async function checkGraphToken(
  config: Config,
  credential: GraphCredential,
  fetchFn: typeof fetch,
  timeoutMs: number,
) {
  const out: Findings = { problems: [], checks: [] }
  const graph = config.graph!
  const tokens = createTokenSource({
    fetch: fetchFn,
    clock: systemClock,
    log: silentLogger,
    tokenUrl: tokenUrlFor(graph.authorityUrl, graph.tenantId),
    clientId: graph.clientId,
    scope: graphScopeFor(graph.apiUrl),
    credential,
    requestTimeoutMs: timeoutMs,
  })
  let token: string
  try {
    token = await tokens.getToken()
  } catch (e) {
    if (e instanceof GraphAuthError) {
      const hint = TOKEN_HINTS[e.code]
      out.problems.push(`Graph token: ${e.code}: ${e.message}${hint ? ` (${hint})` : ''}`)
    } else {
      out.problems.push(`Graph token: ${describe(e)}`)
    }
    return out
  }
  out.checks.push(`Graph token: issued by ${new URL(graph.authorityUrl).host}`)
  const roles = tokenRoles(token)
  if (roles === null) {
    out.checks.push('Graph token: not a readable JWT; permissions not inspected')
    return out
  }
  // RBAC for Applications grants live in Exchange, not in the token: a missing role is only a warning.
  if (!roles.includes('Mail.Send')) {
    out.checks.push(
      'warning: the token carries no Mail.Send role: fine with Exchange RBAC for Applications, otherwise grant Mail.Send and admin consent',
    )
  } else {
    out.checks.push(`Graph token: roles ${roles.join(', ')}`)
  }
  // The lookup filters on an extended property, which Mail.ReadBasic does not expose.
  if (graph.mailboxLookup && !roles.some((r) => r === 'Mail.Read' || r === 'Mail.ReadWrite')) {
    out.checks.push(
      'warning: GRAPH_MAILBOX_LOOKUP=true but the token carries no Mail.Read role (fine with Exchange RBAC for Applications)',
    )
  }
  return out
}

function tokenRoles(token: string): string[] | null {
  try {
    const roles = decodeJwt(token).roles
    return Array.isArray(roles) ? roles.filter((r): r is string => typeof r === 'string') : []
  } catch {
    return null
  }
}

async function checkJwks(url: string, fetchFn: typeof fetch, timeoutMs: number) {
  const out: Findings = { problems: [], checks: [] }
  try {
    const res = await fetchFn(url, { signal: AbortSignal.timeout(timeoutMs) })
    const body = (await res.json().catch(() => null)) as { keys?: unknown } | null
    if (res.ok && Array.isArray(body?.keys) && body.keys.length > 0) {
      out.checks.push(`API_JWKS_URL: ${body.keys.length} key(s)`)
    } else {
      out.problems.push(`API_JWKS_URL: answered HTTP ${res.status} without a non-empty "keys" list`)
    }
  } catch (e) {
    out.problems.push(`API_JWKS_URL: cannot be fetched: ${describe(e)}`)
  }
  return out
}

function describe(e: unknown): string {
  if (e instanceof AggregateError && e.errors.length > 0) return describe(e.errors[0])
  if (e instanceof Error) return e.message || e.name
  return String(e)
}

// Driver and Entra messages can quote what they were given; scrub every secret value before printing.
function redactor(env: Record<string, string | undefined>): (s: string) => string {
  const secrets = new Set<string>()
  const add = (v: string | undefined) => {
    if (v && v.trim().length >= 4) secrets.add(v.trim())
  }
  for (const name of ['GRAPH_CLIENT_SECRET', 'GRAPH_PRIVATE_KEY', 'API_JWT_SECRET']) add(env[name])
  const urls = [env.DATABASE_URL, env.LISTEN_DATABASE_URL]
  try {
    const list = JSON.parse(env.MAILER_DATABASES ?? '[]') as {
      url?: unknown
      listenUrl?: unknown
    }[]
    if (Array.isArray(list)) {
      for (const d of list) {
        if (typeof d?.url === 'string') urls.push(d.url)
        if (typeof d?.listenUrl === 'string') urls.push(d.listenUrl)
      }
    }
  } catch {}
  for (const u of urls) {
    add(u)
    try {
      if (u) add(decodeURIComponent(new URL(u).password))
    } catch {}
  }
  const sorted = [...secrets].sort((a, b) => b.length - a.length)
  return (s) => sorted.reduce((acc, secret) => acc.split(secret).join('***'), s)
}
