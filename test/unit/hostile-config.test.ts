// Every variable against hostile values (seeded, bounded), through loadConfig and check-config: a valid configuration that holds what was set, or an error naming the variable, never an exception, a stack or a secret.
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { parse as parseConnectionString } from 'pg-connection-string'
import { redactor } from '../../src/check-config/redactor.ts'
import { checkConfig } from '../../src/check-config.ts'
import { ENV_VARS } from '../../src/config/env-vars.ts'
import { type Config, loadConfig, type ServeRole } from '../../src/config.ts'
import { isAppError } from '../../src/errors.ts'
import { hostileValue, type OddPems, oddDatabaseUrl } from '../support/hostile-env.ts'
import { generateTestCertificate, type TestCertificate } from '../support/test-certificate.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

// Fixed: a failure names its case and replays it. HOSTILE_SEED and HOSTILE_RUNS search further by
// hand (3,000 cases a property: 10-12 s here, loaded); CI runs these.
const SEED = Number(process.env.HOSTILE_SEED ?? 0x0e_0f55)
// Cases per property: two properties, each case through loadConfig and check-config (1.5-2.5 s here).
const RUNS = Number(process.env.HOSTILE_RUNS ?? 300)

const NAMES = ENV_VARS.map((v) => v.name)
// A problem names a variable as a word: GRAPH_CERTIFICATE_FILE is not GRAPH_CERTIFICATE.
const NAMED = new RegExp(`(?<![A-Z_])(${NAMES.join('|')})(?![A-Z_])`, 'g')
const SECRET_VARS = new Set([
  'GRAPH_CLIENT_SECRET',
  'GRAPH_PRIVATE_KEY',
  'API_JWT_SECRET',
  'API_JWT_SECRET_PREVIOUS',
])
// Variables whose values span lines: a PEM, a JSON list, a list of addresses.
const SPANS_LINES = new Set([
  'GRAPH_CERTIFICATE',
  'GRAPH_PRIVATE_KEY',
  'MAILER_DATABASES',
  'MAIL_FROM_ALLOWED',
])
// A stack's frame, or a path of ours: what an exception turned into a message would carry.
const STACK = /\n\s+at |\.ts:\d+|node_modules/

// Generated per run: a leak is unmistakable and nothing secret sits in the repo.
const dbPassword = `pw${randomBytes(9).toString('hex')}`
const marker = `mk${randomBytes(9).toString('hex')}`
const jwtSecret = randomBytes(32).toString('base64url')
const clientSecret = `cs${randomBytes(18).toString('base64url')}`

let cert: TestCertificate
let pems: OddPems
// PEM files saved as Windows tools save them: a byte order mark, UTF-16, Windows line ends.
let pemFiles: string[] = []
beforeAll(async () => {
  cert = await generateTestCertificate()
  const dir = mkdtempSync(join(tmpdir(), 'outbox-hostile-pem-'))
  const saved: Record<string, string | Buffer> = {
    'cert-bom.pem': `\ufeff${cert.certPem}`,
    'key-bom.pem': `\ufeff${cert.keyPem}`,
    'cert-crlf.pem': cert.certPem.replaceAll('\n', '\r\n'),
    'cert-utf16.pem': Buffer.from(`\ufeff${cert.certPem}`, 'utf16le'),
    'bundle-bom.pem': `${cert.certPem}\ufeff${cert.certPem}`,
  }
  pemFiles = Object.entries(saved).map(([name, text]) => {
    writeFileSync(join(dir, name), text)
    return join(dir, name)
  })
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const short = generateKeyPairSync('rsa', { modulusLength: 1024 })
  pems = {
    ecKey: ec.privateKey.export({ type: 'sec1', format: 'pem' }).toString(),
    ecKeyPkcs8: ec.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKey: ec.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    shortRsaKey: short.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    certificate: cert.certPem,
    otherKey: generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString(),
  }
})

const graphApp = () => ({
  DATABASE_URL: `postgres://app:${dbPassword}@db.example/app`,
  API_JWT_SECRET: jwtSecret,
  MAIL_FROM: 'notifications@example.com',
  GRAPH_TENANT_ID: randomUUID(),
  GRAPH_CLIENT_ID: randomUUID(),
})
/** The valid configurations each hostile value is set into. */
const BASES = {
  graphSecret: () => ({ ...graphApp(), GRAPH_CLIENT_SECRET: clientSecret }),
  graphCertificate: () => ({
    ...graphApp(),
    GRAPH_CERTIFICATE: cert.certPem,
    GRAPH_PRIVATE_KEY: cert.keyPem,
  }),
  discard: () => ({
    MAILER_DATABASES: JSON.stringify([
      { name: 'shop', url: `postgres://app:${dbPassword}@db.example/shop` },
    ]),
    MAIL_TRANSPORT: 'discard',
    API_JWKS_URL: 'https://login.microsoftonline.com/common/discovery/v2.0/keys',
    API_JWT_ISSUER: `https://login.microsoftonline.com/${randomUUID()}/v2.0`,
    API_JWT_AUDIENCE: randomUUID(),
  }),
} satisfies Record<string, () => Record<string, string>>

type Kind = 'int' | 'bool' | 'text' | 'url'
const graph = (c: Config) => c.graph
/**
 * Where each variable's value lands in the Config, and how it is read from the value set (trimmed):
 * a value taken must be there, not a default in its place. Null: where it lands is not read here
 * (the transport or role does not use it), checked otherwise (MAILER_DATABASES, MAIL_FROM_ALLOWED).
 */
const LANDS: Record<string, [Kind, (c: Config) => unknown]> = {
  DATABASE_URL: ['text', (c) => (c.databases[0]?.listed ? null : c.databases[0]?.url)],
  LISTEN_DATABASE_URL: ['text', (c) => (c.databases[0]?.listed ? null : c.databases[0]?.listenUrl)],
  MAIL_TRANSPORT: ['text', (c) => c.transport],
  MAIL_FILE_DIR: ['text', (c) => c.fileDir],
  MAIL_FROM: ['text', (c) => c.mailFrom],
  GRAPH_TENANT_ID: ['text', (c) => graph(c)?.tenantId],
  GRAPH_CLIENT_ID: ['text', (c) => graph(c)?.clientId],
  GRAPH_CERTIFICATE: ['text', (c) => graph(c)?.certificate],
  GRAPH_CERTIFICATE_FILE: ['text', (c) => graph(c)?.certificateFile],
  GRAPH_PRIVATE_KEY: ['text', (c) => graph(c)?.privateKey],
  GRAPH_PRIVATE_KEY_FILE: ['text', (c) => graph(c)?.privateKeyFile],
  GRAPH_CLIENT_SECRET: ['text', (c) => graph(c)?.clientSecret],
  GRAPH_ASSERTION_ALGORITHM: ['text', (c) => graph(c)?.assertionAlgorithm],
  GRAPH_AUTHORITY_URL: ['url', (c) => graph(c)?.authorityUrl],
  GRAPH_API_URL: ['url', (c) => graph(c)?.apiUrl],
  GRAPH_SAVE_TO_SENT_ITEMS: ['bool', (c) => graph(c)?.saveToSentItems],
  GRAPH_REQUEST_TIMEOUT_SECONDS: [
    'int',
    (c) => (c.graph ? c.graph.requestTimeoutMs / 1000 : undefined),
  ],
  GRAPH_MAILBOX_LOOKUP: ['bool', (c) => graph(c)?.mailboxLookup],
  AMBIGUOUS_SEND_POLICY: ['text', (c) => graph(c)?.ambiguousSendPolicy],
  THROTTLE_DEADLINE_SECONDS: ['int', (c) => c.worker.throttleDeadlineSeconds],
  HOST: ['text', (c) => c.http.host],
  PORT: ['int', (c) => c.http.port],
  METRICS_PORT: ['int', (c) => c.http.metricsPort],
  API_JWT_SECRET: ['text', (c) => c.api.jwtSecret],
  API_JWT_SECRET_PREVIOUS: ['text', (c) => c.api.jwtSecretPrevious],
  API_JWKS_URL: ['url', (c) => c.api.jwksUrl],
  API_JWT_ISSUER: ['text', (c) => c.api.issuer],
  API_JWT_AUDIENCE: ['text', (c) => c.api.audience],
  LOG_LEVEL: ['text', (c) => c.logLevel],
  WORKER_CONCURRENCY: ['int', (c) => c.worker.concurrency],
  LEASE_SECONDS: ['int', (c) => c.worker.leaseSeconds],
  HEARTBEAT_SECONDS: ['int', (c) => c.worker.heartbeatSeconds],
  MAX_ATTEMPTS: ['int', (c) => c.worker.maxAttempts],
  RETRY_BASE_SECONDS: ['int', (c) => c.worker.retryBaseSeconds],
  RETRY_MAX_SECONDS: ['int', (c) => c.worker.retryMaxSeconds],
  POLL_INTERVAL_SECONDS: ['int', (c) => c.worker.pollIntervalSeconds],
  LISTEN_CHECK_SECONDS: ['int', (c) => c.worker.listenCheckSeconds],
  LISTEN_MODE: ['text', (c) => c.worker.listenMode],
  SHUTDOWN_GRACE_SECONDS: ['int', (c) => c.worker.shutdownGraceSeconds],
  GRAPH_MAX_CONCURRENCY: ['int', (c) => c.limits.graphMaxConcurrency],
  MAILBOX_RATE_PER_MINUTE: ['int', (c) => c.limits.mailboxRatePerMinute],
  MIGRATE_DEADLINE_SECONDS: ['int', (c) => c.migrate.deadlineSeconds],
}

/** What a value set (and taken) must read as in the Config, or null where it is not read here. */
function landed(name: string, value: string, c: Config): { got: unknown; want: unknown } | null {
  const t = value.trim()
  if (name === 'MAILER_DATABASES') return { got: c.databases.every((d) => d.listed), want: true }
  if (name === 'MAIL_FROM_ALLOWED') return { got: c.allowedSenders !== null, want: true }
  const [kind, read] = LANDS[name]!
  const got = read(c)
  if (got === undefined || got === null) return null
  const want =
    kind === 'int'
      ? Number(t) + 0
      : kind === 'bool'
        ? t === 'true' || t === '1'
        : kind === 'url'
          ? t.replace(/\/+$/, '')
          : t
  return { got, want }
}

/**
 * How the driver (pg-connection-string, at each connection) reads a URL otherwise than it is
 * written, or null: it throws; the host part's password, percent-decoded, is not the password it
 * sends (it keeps a malformed escape as written, and one anywhere made it read every escape as
 * written); a PEM file it hands to TLS holds a byte order mark or is no text TLS reads (UTF-16).
 */
function driverMisreads(url: string): string | null {
  let read: ReturnType<typeof parseConnectionString>
  try {
    read = parseConnectionString(url)
  } catch (e) {
    return `throws ${(e as Error).name}`
  }
  const query = url.includes('?') ? new URLSearchParams(url.slice(url.indexOf('?') + 1)) : null
  let written: string | null = null
  try {
    written = decodeURIComponent(new URL(url).password)
  } catch (e) {
    // No URL to the URL parser (no host: pg's own parser puts one in), or an escape no UTF-8.
    if (e instanceof URIError) return 'its password decodes to no text'
  }
  if (written && !query?.has('password') && read.password !== written)
    return 'sends another password than the URL writes'
  const ssl = typeof read.ssl === 'object' ? read.ssl : {}
  for (const key of ['ca', 'cert', 'key'] as const) {
    const text = ssl[key]
    if (typeof text === 'string' && /[\ufeff\0]/.test(text))
      return `hands TLS a ${key} it reads no PEM in`
  }
  return null
}

type Case = { base: keyof typeof BASES; role: ServeRole; set: [string, string][] }

const describeCase = (c: Case) =>
  `${c.base} --role ${c.role}: ${c.set.map(([n, v]) => `${n}=${JSON.stringify(v.length > 120 ? `${v.slice(0, 120)}…(${v.length})` : v)}`).join(' ')}`

/** What must never be printed: every secret of the case, the marker a URL's password holds. */
function secretsOf(c: Case, env: Record<string, string>): string[] {
  const found = [dbPassword, marker, jwtSecret, clientSecret, cert.keyPem.split('\n')[1]!]
  for (const [name, value] of c.set) {
    const t = value.trim()
    // Short or blank: a word of any message. A PEM's text: its body line, which no message holds.
    if (SECRET_VARS.has(name) && t.length >= 12)
      found.push(t.includes('\n') ? t.split('\n')[1]! : t)
  }
  return found.filter((s) => s.length >= 8 && Object.values(env).some((v) => v.includes(s)))
}

async function expectClearOutcome(c: Case) {
  const where = describeCase(c)
  const env: Record<string, string> = { ...BASES[c.base]() }
  for (const [name, value] of c.set) env[name] = value
  const secrets = secretsOf(c, env)
  const leaked = (text: string) => secrets.filter((s) => text.includes(s))

  let config: Config | null = null
  let problems: string[] = []
  try {
    config = loadConfig(env, { role: c.role })
  } catch (e) {
    // Only the configuration's own error: never an exception of a parser or a TypeError.
    expect({
      where,
      error: isAppError(e, 'config_invalid') ? 'config_invalid' : String(e),
    }).toEqual({ where, error: 'config_invalid' })
    problems = (e as { details: { problems: string[] } }).details.problems
  }

  if (config) {
    // Taken: each value set is in the Config as written (trimmed), not clamped, not defaulted, and
    // holds no character no one sees (but a line break where a value spans lines).
    for (const [name, value] of c.set) {
      if (value.trim() === '') continue
      const unseen = [...value.trim()].filter(
        (ch) => /[\p{Cc}\p{Cf}]/u.test(ch) && !(SPANS_LINES.has(name) && /[\t\n\r]/.test(ch)),
      )
      expect({ where, name, unseen }).toEqual({ where, name, unseen: [] })
      const l = landed(name, value, config)
      if (l) expect({ where, name, ...l }).toEqual({ where, name, got: l.want, want: l.want })
    }
    // And each database URL taken is read by the driver as it is written.
    for (const d of config.databases) {
      for (const url of new Set([d.url, d.listenUrl])) {
        expect({ where, misread: driverMisreads(url) }).toEqual({ where, misread: null })
      }
    }
  } else {
    expect({ where, none: problems.length > 0 }).toEqual({ where, none: true })
    // Each problem names the variable(s) it is about, says more than the name, on one line, no stack.
    const unclear = problems.filter(
      (p) =>
        !p.match(NAMED) || p.replace(NAMED, '').length < 15 || STACK.test(p) || p.includes('\n'),
    )
    expect({ where, unclear }).toEqual({ where, unclear: [] })
    // Some problem names a variable set: the refusal is about what the user wrote.
    const named = new Set(problems.flatMap((p) => p.match(NAMED) ?? []))
    const about = c.set.some(
      ([n]) =>
        named.has(n) ||
        named.has(n.replace(/_FILE$/, '')) ||
        // "GRAPH_CLIENT_SECRET and a certificate are both set": the certificate's variables.
        (/^GRAPH_(CERTIFICATE|PRIVATE_KEY)/.test(n) && named.has('GRAPH_CLIENT_SECRET')),
    )
    expect({ where, about, problems }).toEqual({ where, about: true, problems })
    expect({ where, leaked: leaked(JSON.stringify(problems)) }).toEqual({ where, leaked: [] })
  }

  // check-config: never throws; what loadConfig refused it names (its exit 2), the same words.
  let report: Awaited<ReturnType<typeof checkConfig>>
  try {
    report = await checkConfig(env, { connect: false, role: c.role, euid: 1000 })
  } catch (e) {
    throw new Error(`check-config threw for ${where}: ${String(e)}`)
  }
  if (!config) {
    expect({ where, ok: report.ok }).toEqual({ where, ok: false })
    // Masked as check-config masks every secret's value, wherever it occurs (a "secret" of true, a
    // word of the boolean's problem, reads as ***).
    const redact = redactor(env)
    // The same words, or the same subject: where a JSON nested thousands deep breaks is said as the
    // stack allows the scan (json-syntax-error.ts TOO_DEEP), deeper under check-config's.
    const subject = (p: string) => p.split(':')[0]
    const missing = problems
      .map(redact)
      .filter((p) => !report.problems.some((q) => q === p || subject(q) === subject(p)))
    expect({ where, missing }).toEqual({ where, missing: [] })
  }
  const unclear = report.problems.filter((p) => !p.match(NAMED) || STACK.test(p))
  expect({ where, unclear }).toEqual({ where, unclear: [] })
  expect({ where, leaked: leaked(JSON.stringify(report)) }).toEqual({ where, leaked: [] })
}

const baseArb = fc.constantFrom(...(Object.keys(BASES) as (keyof typeof BASES)[]))
const roleArb = fc.constantFrom<ServeRole>('all', 'all', 'worker', 'api')
// Built in each test: the PEMs it feeds are made in beforeAll.
const setting = () =>
  fc
    .constantFrom(...NAMES)
    .chain((name) => fc.tuple(fc.constant(name), hostileValue(name, marker, pems, pemFiles)))

const assertOptions = { seed: SEED, numRuns: RUNS, endOnFailure: true }

describe('hostile configuration', () => {
  test('one variable set to a hostile value (blank, NUL, huge, unicode digits, a unit, a broken URL or PEM): a configuration holding it, or an error naming it', async () => {
    await fc.assert(
      fc.asyncProperty(baseArb, roleArb, setting(), async (base, role, one) => {
        await expectClearOutcome({ base, role, set: [one] })
      }),
      assertOptions,
    )
  })

  test('a database URL alone, its percent-encoding and PEM files odd (a byte order mark, UTF-16): refused, or read by the driver as written', async () => {
    // Three variables of forty-six hold a URL: the properties above meet few such cases a run.
    await fc.assert(
      fc.asyncProperty(
        baseArb,
        fc.constantFrom('DATABASE_URL', 'LISTEN_DATABASE_URL'),
        oddDatabaseUrl(marker, pemFiles),
        async (base, name, url) => {
          await expectClearOutcome({ base, role: 'all', set: [[name, url]] })
        },
      ),
      { ...assertOptions, numRuns: Math.ceil(RUNS / 3) },
    )
  })

  test('several variables hostile at once (contradictory, duplicated, each other’s values): every problem named, none hidden by another', async () => {
    await fc.assert(
      fc.asyncProperty(
        baseArb,
        roleArb,
        fc.uniqueArray(setting(), { minLength: 2, maxLength: 4, selector: ([n]) => n }),
        async (base, role, set) => {
          await expectClearOutcome({ base, role, set })
        },
      ),
      assertOptions,
    )
  })
})
