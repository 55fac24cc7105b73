// `check-config [--connect]`: validates the environment and, on request, reaches every database and Entra.
import { credentialProblemsBeside } from './check-config/credential-beside-problems.ts'
import { describeCredential } from './check-config/credential-report.ts'
import { checkDatabase } from './check-config/database-check.ts'
import { checkFileDir } from './check-config/file-dir-check.ts'
import { checkGraphToken } from './check-config/graph-token-check.ts'
import { checkJwks } from './check-config/jwks-check.ts'
import { checkMailFrom } from './check-config/mail-from-check.ts'
import { redactor } from './check-config/redactor.ts'
import { describeSenders } from './check-config/senders-report.ts'
import { graphConcurrencyWarning } from './config/outlook-concurrency.ts'
import { apiMailFromWarning, MAIL_FROM_UNSET_WARNING } from './config/sender-mailbox.ts'
import { unknownVariables, unknownVariableText } from './config/unknown-variables.ts'
import {
  URL_APPLICATION_NAME_WARNING,
  urlsNamingApplication,
} from './config/url-application-name.ts'
import { certificateUncheckedWarnings } from './config/url-certificate-unchecked.ts'
import { type Config, loadConfig, type ServeRole } from './config.ts'
import { sameServerDatabaseProblems } from './db/server-database.ts'
import { isAppError } from './errors.ts'
import { type GraphCredential, loadGraphCredential } from './transport/graph-credential.ts'

interface CheckConfigOptions {
  /** Also reach every database (select 1, schema status) and fetch a Graph token. */
  connect: boolean
  fetch?: typeof fetch
  /** The role the deployment will serve; the API (all, api) refuses to start without auth. */
  role?: ServeRole
  now?: () => number
  /** Per network step; a pre-deploy check should fail fast rather than hang a pipeline. */
  timeoutMs?: number
  /** The user the check runs as (process.geteuid()): root may write into MAIL_FILE_DIR whatever its modes. */
  euid?: number
}

interface CheckConfigResult {
  ok: boolean
  problems: string[]
  checks: string[]
}

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
  // First, and whatever else is wrong: a misspelt name is often why a variable looks missing.
  for (const v of unknownVariables(env)) checks.push(`warning: ${unknownVariableText(v)}`)

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
    const refused = problemsOf(e)
    problems.push(...refused.map(redact))
    // serve reads the credential once the rest is valid: a problem of it is named now as well.
    problems.push(...credentialProblemsBeside(env, role, refused, now()).map(redact))
    return { ok: false, problems, checks }
  }
  checks.push(
    `configuration: valid (${config.databases.length} database(s): ${config.databases
      .map((d) => d.name)
      .join(
        ', ',
      )}; ${role === 'api' ? 'no transport: --role api sends nothing' : `transport ${config.transport}`})`,
  )

  // Graph requires MAIL_FROM; file and discard start without it, and then fail for good every row
  // that names no sender of its own (the renderer has none to give it).
  if (role !== 'api' && config.transport !== 'graph' && !config.mailFrom) {
    checks.push(`warning: ${MAIL_FROM_UNSET_WARNING}`)
  }
  // An API-only process starts with any MAIL_FROM, which its workers' start would refuse.
  const apiMailFrom = role === 'api' ? apiMailFromWarning(config.mailFrom, config.transport) : null
  if (apiMailFrom) checks.push(`warning: ${apiMailFrom}`)

  const concurrency = graphConcurrencyWarning({
    role,
    transport: config.transport,
    graphMaxConcurrency: config.limits.graphMaxConcurrency,
  })
  if (concurrency) checks.push(`warning: ${concurrency}`)

  for (const { variable } of urlsNamingApplication(config.databases))
    checks.push(`warning: ${variable} ${URL_APPLICATION_NAME_WARNING}`)
  for (const w of certificateUncheckedWarnings(config.databases)) checks.push(`warning: ${w}`)

  // Every role: the API refuses at enqueue, the workers at send.
  checks.push(...describeSenders(config))

  if (role !== 'api' && config.transport === 'file') {
    const r = checkFileDir(config.fileDir, o.euid)
    problems.push(...r.problems)
    checks.push(...r.checks)
  }

  if (role !== 'worker') {
    if (config.api.jwtSecret) {
      checks.push(
        config.api.jwtSecretPrevious
          ? 'API auth: HS256 bearer tokens (API_JWT_SECRET; API_JWT_SECRET_PREVIOUS still accepted: unset it once every caller has a new token)'
          : 'API auth: HS256 bearer tokens (API_JWT_SECRET)',
      )
    } else if (config.api.jwksUrl) checks.push('API auth: bearer tokens verified with API_JWKS_URL')
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
    const reached: { name: string; database: string }[] = []
    for (const d of config.databases) {
      const r = await checkDatabase(d, config, role, timeoutMs)
      problems.push(...r.problems.map(redact))
      checks.push(...r.checks.map(redact))
      if (r.database !== undefined) reached.push({ name: d.name, database: r.database })
    }
    problems.push(...sameServerDatabaseProblems(reached))
    if (config.graph && credential) {
      const r = await checkGraphToken(config, credential, o.fetch ?? fetch, timeoutMs)
      problems.push(...r.problems.map(redact))
      checks.push(...r.checks.map(redact))
      // Asked with the token just fetched: a second token request would change nothing.
      if (r.token && role !== 'api') {
        const m = await checkMailFrom(config, r.token, o.fetch ?? fetch, timeoutMs)
        problems.push(...m.problems.map(redact))
        checks.push(...m.checks.map(redact))
      }
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

function problemsOf(e: unknown): string[] {
  if (isAppError(e)) {
    const listed = e.details?.problems
    if (Array.isArray(listed) && listed.every((p) => typeof p === 'string')) return listed
    return [e.message]
  }
  return [e instanceof Error ? e.message : String(e)]
}
