// loadConfig: defaults, every problem named at once without echoing a secret, URLs and cross-field rules checked at start.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { checkConfig } from '../../src/check-config.ts'
import { urlVariable } from '../../src/config/database-list.ts'
import { ENV_VARS } from '../../src/config/env-vars.ts'
import { loadConfig } from '../../src/config.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const base = { DATABASE_URL: 'postgres://u:p@db/app', MAIL_TRANSPORT: 'file' }
/** A Graph transport with a secret for its credential (placeholders: loadConfig judges which are set). */
const graphWithSecret = {
  ...base,
  MAIL_TRANSPORT: 'graph',
  GRAPH_TENANT_ID: '8f2a61c4-0b3e-4d5f-9a7b-1c2d3e4f5a6b',
  GRAPH_CLIENT_ID: '0c4b9f1e-6a2d-4e8b-b3a7-5d9c2e1f4a8b',
  GRAPH_CLIENT_SECRET: 's',
  MAIL_FROM: 'outbox@example.com',
}

/** What loadConfig names wrong in `env` (none when it loads). */
function configProblems(
  env: Record<string, string | undefined>,
  o: Parameters<typeof loadConfig>[1] = {},
): string[] {
  try {
    loadConfig(env, o)
    return []
  } catch (e) {
    return (e as { details: { problems: string[] } }).details.problems
  }
}

describe('loadConfig', () => {
  test('defaults match DESIGN.md', () => {
    const c = loadConfig(base)
    // Each as --help states it (ENV_VARS): the whole worker, every field.
    expect(c.worker).toEqual({
      concurrency: 10,
      leaseSeconds: 60,
      heartbeatSeconds: 20,
      maxAttempts: 8,
      retryBaseSeconds: 10,
      retryMaxSeconds: 3600,
      pollIntervalSeconds: 30,
      listenCheckSeconds: 15,
      listenMode: 'auto',
      shutdownGraceSeconds: 20,
      throttleDeadlineSeconds: 86400,
    })
    expect([c.logLevel, c.fileDir, c.mailFrom]).toEqual(['info', './mail-out', null])
    expect(c.limits).toEqual({ graphMaxConcurrency: 4, mailboxRatePerMinute: 30 })
    expect(c.http).toEqual({ host: '0.0.0.0', port: 8080, metricsPort: null })
    expect(c.databases).toEqual([
      { name: 'default', url: base.DATABASE_URL, listenUrl: base.DATABASE_URL },
    ])
    expect(Object.isFrozen(c.worker)).toBe(true)
    // GRAPH_AUTHORITY_URL and GRAPH_API_URL unset: Microsoft's global cloud; the assertion PS256.
    expect(loadConfig(graphWithSecret).graph).toMatchObject({
      authorityUrl: 'https://login.microsoftonline.com',
      apiUrl: 'https://graph.microsoft.com/v1.0',
      assertionAlgorithm: 'PS256',
    })
    // HEARTBEAT_SECONDS unset: a third of LEASE_SECONDS.
    expect(loadConfig({ ...base, LEASE_SECONDS: '90' }).worker.heartbeatSeconds).toBe(30)
  })

  test("migrate's deadline: 270 s unset, within Fly's default 5-minute release_command_timeout; 0 for none", () => {
    expect([
      loadConfig(base).migrate,
      loadConfig({ ...base, MIGRATE_DEADLINE_SECONDS: '900' }).migrate,
      loadConfig({ ...base, MIGRATE_DEADLINE_SECONDS: '0' }).migrate,
    ]).toEqual([{ deadlineSeconds: 270 }, { deadlineSeconds: 900 }, { deadlineSeconds: 0 }])
    expect(configProblems({ ...base, MIGRATE_DEADLINE_SECONDS: '4m' })).toEqual([
      'MIGRATE_DEADLINE_SECONDS: must be a whole number of seconds from 0 to 86400, without a unit (4m is 240)',
    ])
  })

  test('a number that is no whole number names its range, and a duration written with a unit is told in seconds', () => {
    // Told "must be a whole number", a user who wrote 1.5 or 30s learnt neither the range nor the
    // unit, and was refused again for 99999 ("must be from 0 to 65535").
    expect(
      [
        { PORT: '1.5' },
        { PORT: '٣' },
        { METRICS_PORT: '1e3' },
        { WORKER_CONCURRENCY: 'lots' },
        { LEASE_SECONDS: '90s' },
        { MIGRATE_DEADLINE_SECONDS: '4m' },
        { THROTTLE_DEADLINE_SECONDS: '2 h' },
        { SHUTDOWN_GRACE_SECONDS: '1.5s' },
        { RETRY_MAX_SECONDS: '30d' },
        { HEARTBEAT_SECONDS: '500ms' },
        { POLL_INTERVAL_SECONDS: '1e999' },
      ].flatMap((env) => configProblems({ ...base, ...env })),
    ).toEqual([
      'PORT: must be a whole number from 0 to 65535',
      'PORT: must be a whole number from 0 to 65535',
      'METRICS_PORT: must be a whole number from 0 to 65535',
      'WORKER_CONCURRENCY: must be a whole number from 1 to 500',
      'LEASE_SECONDS: must be a whole number of seconds from 5 to 3600, without a unit (90s is 90)',
      'MIGRATE_DEADLINE_SECONDS: must be a whole number of seconds from 0 to 86400, without a unit (4m is 240)',
      'THROTTLE_DEADLINE_SECONDS: must be a whole number of seconds from 60 to 2592000, without a unit (2 h is 7200)',
      'SHUTDOWN_GRACE_SECONDS: must be a whole number of seconds from 0 to 600, without a unit',
      // 30 days is past RETRY_MAX_SECONDS's largest: no number offered that would be refused.
      'RETRY_MAX_SECONDS: must be a whole number of seconds from 1 to 604800, without a unit',
      'HEARTBEAT_SECONDS: must be a whole number of seconds from 1 to 1200, without a unit',
      'POLL_INTERVAL_SECONDS: must be a whole number of seconds from 1 to 3600, without a unit',
    ])
  })

  test('an invisible character in a value (a zero-width space, a word joiner, a control character) is refused, naming where, never the value', () => {
    // A copy from a web page, a chat or a document brings them, and no one sees them: taken, a
    // client id failed at every token (AADSTS700016), a sender at every send, a host at every
    // connection (ENOTFOUND), each naming a value that looks right.
    const secret = `s${crypto.randomUUID()}`
    expect(
      [
        { GRAPH_CLIENT_ID: '11111111-2222-3333-4444-555555555555\u200b' },
        { GRAPH_TENANT_ID: 'contoso\u2060.onmicrosoft.com' },
        { MAIL_FROM: 'outbox\u200b@example.com' },
        { DATABASE_URL: 'postgres://u:p@db\u00ad.example/app' },
        { API_JWT_AUDIENCE: 'api://outbox\u200e' },
        { GRAPH_CLIENT_SECRET: `${secret}\u001b` },
        { GRAPH_CLIENT_ID: '11111111-2222-3333-4444-555555555555\n11111111' },
      ].flatMap((env) => configProblems({ ...graphWithSecret, ...env })),
    ).toEqual([
      'GRAPH_CLIENT_ID: holds an invisible character, U+200B (zero-width space), at character 37 of 37: a copy from a web page, a chat or a document leaves them; type that part again',
      'GRAPH_TENANT_ID: holds an invisible character, U+2060 (word joiner), at character 8 of 24: a copy from a web page, a chat or a document leaves them; type that part again',
      'MAIL_FROM: holds an invisible character, U+200B (zero-width space), at character 7 of 19: a copy from a web page, a chat or a document leaves them; type that part again',
      'DATABASE_URL: holds an invisible character, U+00AD (soft hyphen), at character 18 of 30: a copy from a web page, a chat or a document leaves them; type that part again',
      'API_JWT_AUDIENCE: holds an invisible character, U+200E (left-to-right mark), at character 13 of 13: a copy from a web page, a chat or a document leaves them; type that part again',
      "GRAPH_CLIENT_SECRET: holds an invisible character, U+001B (a control character), at character 38 of 38: a copy from a web page, a chat or a document leaves them; copy the secret's Value again from where it was saved (Entra shows it once, when it is added: if it is lost, add a new client secret under the app registration's Certificates & secrets)",
      'GRAPH_CLIENT_ID: holds an invisible character, U+000A (a line break), at character 37 of 45: a copy from a web page, a chat or a document leaves them; type that part again',
    ])
    // Line breaks where a value takes them (a PEM, a JSON list, a list of addresses), and a joiner
    // inside an emoji of a sender's name, are taken.
    expect(
      configProblems({
        ...base,
        MAIL_FROM: 'Team \u{1F468}\u200d\u{1F469} <outbox@example.com>',
        MAIL_FROM_ALLOWED: 'a@example.com,\nb@example.com',
        MAILER_DATABASES: '[\n  {"name": "a", "url": "postgres://db/a"}\n]',
        DATABASE_URL: undefined,
      }),
    ).toEqual([])
  })

  test('a client secret holding a soft hyphen (a document breaking it across lines) names U+00AD and says to copy the secret again, never quoting it', async () => {
    // A client secret is 40 random characters Entra shows once: no one types part of it again.
    const secret = `Xy8Q~${crypto.randomUUID().replaceAll('-', '')}`
    const pasted = `${secret.slice(0, 20)}\u00ad${secret.slice(20)}`
    const soft = `GRAPH_CLIENT_SECRET: holds an invisible character, U+00AD (soft hyphen), at character 21 of ${secret.length + 1}: a copy from a web page, a chat or a document leaves them; copy the secret's Value again from where it was saved (Entra shows it once, when it is added: if it is lost, add a new client secret under the app registration's Certificates & secrets)`
    expect(configProblems({ ...graphWithSecret, GRAPH_CLIENT_SECRET: pasted })).toEqual([soft])
    const report = await checkConfig(
      {
        ...graphWithSecret,
        API_JWT_SECRET: crypto.randomUUID().repeat(2),
        GRAPH_CLIENT_SECRET: pasted,
      },
      { connect: false },
    )
    expect(report.problems).toEqual([soft])
    expect(JSON.stringify(report)).not.toContain(secret.slice(0, 20))
    expect(JSON.stringify(report)).not.toContain(secret.slice(20))
  })

  test("MAIL_FROM's display name takes the format characters its script or its emoji is written with; its address takes none", () => {
    // The name is shown on each mail, never used to reach anything: Persian writes with a
    // non-joiner, Devanagari with a joiner, an emoji with a skin tone or a variation selector
    // before its joiner, a flag with tag characters, a Hebrew name beside Latin with a direction mark.
    for (const from of [
      'کتاب\u200cخانه <outbox@example.com>',
      'क्\u200dष Team <outbox@example.com>',
      '\u{1F469}\u{1F3FD}\u200d\u{1F4BB} Support <outbox@example.com>',
      '\u2764\ufe0f\u200d\u{1F525} Deals <outbox@example.com>',
      '\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F} Tours <outbox@example.com>',
      '"\u05d7\u05e0\u05d5\u05ea\u200f ACME" <outbox@example.com>',
    ]) {
      expect({ from, problems: configProblems({ ...graphWithSecret, MAIL_FROM: from }) }).toEqual({
        from,
        problems: [],
      })
    }
    // The address still takes none (every send would go to a mailbox no one has), nor the name a
    // control character.
    expect(
      ['Outbox\u200c <outbox\u200b@example.com>', 'Out\u0001box <outbox@example.com>'].flatMap(
        (from) => configProblems({ ...graphWithSecret, MAIL_FROM: from }),
      ),
    ).toEqual([
      'MAIL_FROM: holds an invisible character, U+200B (zero-width space), at character 16 of 29: a copy from a web page, a chat or a document leaves them; type that part again',
      'MAIL_FROM: holds an invisible character, U+0001 (a control character), at character 4 of 28: a copy from a web page, a chat or a document leaves them; type that part again',
    ])
  })

  test('LISTEN_DATABASE_URL and MAILER_DATABASES', () => {
    expect(
      loadConfig({ ...base, LISTEN_DATABASE_URL: 'postgres://direct/app' }).databases[0]!.listenUrl,
    ).toBe('postgres://direct/app')
    const c = loadConfig({
      MAIL_TRANSPORT: 'discard',
      MAILER_DATABASES: JSON.stringify([
        { name: 'rpm', url: 'postgres://a/rpm', listenUrl: 'postgres://direct/rpm' },
        { name: 'shop', url: 'postgres://a/shop' },
      ]),
    })
    expect(c.databases.map((d) => [d.name, d.listenUrl])).toEqual([
      ['rpm', 'postgres://direct/rpm'],
      ['shop', 'postgres://a/shop'],
    ])
  })

  test('names every problem at once and never echoes a secret', () => {
    const secret = 'super-secret-value-that-must-not-leak'
    let message = ''
    try {
      loadConfig({
        MAIL_TRANSPORT: 'graph',
        GRAPH_CLIENT_SECRET: secret,
        WORKER_CONCURRENCY: 'lots',
        LEASE_SECONDS: '10',
        HEARTBEAT_SECONDS: '9',
        API_JWT_SECRET: 'short',
      })
    } catch (e) {
      message = (e as Error).message
      expect((e as { code?: string }).code).toBe('config_invalid')
    }
    expect(message).toContain('WORKER_CONCURRENCY')
    expect(message).toContain('API_JWT_SECRET')
    expect(message).not.toContain(secret)
    expect(message).not.toContain('short')
  })

  test('a heartbeat past half the lease with Graph is told the most it may be when the request timeout needs less than half', () => {
    // Told only "half" (30), a user who set 30 was refused again; told 28, the next try starts.
    const [told] = configProblems({ ...graphWithSecret, HEARTBEAT_SECONDS: '40' })
    expect(told).toStartWith(
      'HEARTBEAT_SECONDS: must be at most LEASE_SECONDS minus GRAPH_REQUEST_TIMEOUT_SECONDS minus 2 (28 with 60 and 30; 40 set)',
    )
    // Each way out named with its number; a shorter timeout alone would leave 40 past half the lease.
    expect(told).toEndWith(
      '; set HEARTBEAT_SECONDS to 28 or less (or leave it unset), or LEASE_SECONDS to 80 or more',
    )
    expect(configProblems({ ...graphWithSecret, HEARTBEAT_SECONDS: '28' })).toEqual([])
    for (const env of [
      { HEARTBEAT_SECONDS: '30', GRAPH_REQUEST_TIMEOUT_SECONDS: '28' },
      { HEARTBEAT_SECONDS: '30', LEASE_SECONDS: '62' },
      { HEARTBEAT_SECONDS: '40', LEASE_SECONDS: '80' },
    ]) {
      expect(configProblems({ ...graphWithSecret, ...env })).toEqual([])
    }
    // Where half the lease is the tighter bound (a short request timeout), half is what is told.
    expect(
      configProblems({
        ...graphWithSecret,
        GRAPH_REQUEST_TIMEOUT_SECONDS: '5',
        HEARTBEAT_SECONDS: '40',
      }),
    ).toEqual(['HEARTBEAT_SECONDS: must be at most half of LEASE_SECONDS'])
  })
  test('a malformed value does not hide the missing ones: every problem is named in one run', () => {
    const named = configProblems({ MAIL_TRANSPORT: 'graph', WORKER_CONCURRENCY: 'lots' })
    for (const name of [
      'WORKER_CONCURRENCY: must be a whole number from 1 to 500',
      'DATABASE_URL (or MAILER_DATABASES) is required',
      'GRAPH_TENANT_ID is required',
      'a Graph credential is required',
    ]) {
      expect(named.join('\n')).toContain(name)
    }
    // A rule between two settings is not reported against a value that is itself refused.
    expect(configProblems({ ...base, LEASE_SECONDS: 'soon', HEARTBEAT_SECONDS: '40' })).toEqual([
      'LEASE_SECONDS: must be a whole number of seconds from 5 to 3600, without a unit',
    ])
    expect(configProblems({ ...base, PORT: 'x', METRICS_PORT: '8080' })).toEqual([
      'PORT: must be a whole number from 0 to 65535',
    ])
    expect(configProblems({ DATABASE_URL: 'mysql://x', MAIL_TRANSPORT: 'smtp' })).toEqual([
      'DATABASE_URL: must be a postgres:// or postgresql:// URL',
      expect.stringMatching(/^MAIL_TRANSPORT: /),
    ])
  })

  test('cross-field rules', () => {
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env)
        return ''
      } catch (e) {
        return (e as Error).message
      }
    }
    expect(problems({ MAIL_TRANSPORT: 'file' })).toContain(
      'DATABASE_URL (or MAILER_DATABASES) is required',
    )
    expect(problems({ ...base, HEARTBEAT_SECONDS: '40' })).toContain('HEARTBEAT_SECONDS')
    expect(problems({ ...base, MAIL_TRANSPORT: 'graph' })).toContain('GRAPH_TENANT_ID is required')
    expect(problems({ ...base, MAIL_TRANSPORT: 'graph' })).toContain(
      'a Graph credential is required',
    )
    expect(
      problems({ ...base, MAILER_DATABASES: '[{"name":"a","url":"postgres://x/a"}]' }),
    ).toContain('both set')
    expect(
      problems({
        MAIL_TRANSPORT: 'file',
        MAILER_DATABASES:
          '[{"name":"a","url":"postgres://x/a"},{"name":"a","url":"postgres://x/b"}]',
      }),
    ).toContain('repeated')
    // Each database of MAILER_DATABASES has its own listenUrl: a LISTEN_DATABASE_URL would be ignored.
    expect(
      problems({
        MAIL_TRANSPORT: 'file',
        LISTEN_DATABASE_URL: 'postgres://direct/a',
        MAILER_DATABASES: '[{"name":"a","url":"postgres://x/a"}]',
      }),
    ).toContain('LISTEN_DATABASE_URL is ignored with MAILER_DATABASES')
    expect(problems({ MAIL_TRANSPORT: 'file', MAILER_DATABASES: 'not json' })).toContain(
      'not valid JSON',
    )
    expect(configProblems({ ...base, RETRY_BASE_SECONDS: '20', RETRY_MAX_SECONDS: '10' })).toEqual([
      'RETRY_MAX_SECONDS: must be at least RETRY_BASE_SECONDS',
    ])
    // A key set pins both: without an audience, a token minted for any other API would do.
    const jwks = { ...base, API_JWKS_URL: 'https://login.example/keys' }
    expect([
      configProblems({ ...jwks, API_JWT_ISSUER: 'https://login.example' }),
      configProblems({ ...jwks, API_JWT_AUDIENCE: 'outbox-mailer' }),
    ]).toEqual([
      ['API_JWKS_URL needs API_JWT_ISSUER and API_JWT_AUDIENCE to pin the tokens'],
      ['API_JWKS_URL needs API_JWT_ISSUER and API_JWT_AUDIENCE to pin the tokens'],
    ])
    // serve needs API auth unless it serves no API: --role worker (health and metrics) or dev.
    const auth = expect.stringMatching(/^the API needs auth: /)
    expect(
      (['all', 'api', 'worker'] as const).map((role) =>
        configProblems(base, { servesApi: true, role }),
      ),
    ).toEqual([[auth], [auth], []])
    expect(configProblems(base, { servesApi: true, dev: true })).toEqual([])
    expect(problems({ ...base, DATABASE_URL: 'mysql://x' })).toContain('postgres://')
    // The driver reads `postgres:db` as database "b" on the local socket: refused before it does.
    expect(configProblems({ ...base, DATABASE_URL: 'postgres:db' })).toEqual([
      'DATABASE_URL: must be a postgres:// or postgresql:// URL',
    ])
  })

  test('each numeric variable takes the whole numbers of its range: its bounds start, one past either is named', () => {
    // [variable, lowest, highest, what a bound needs of another variable]. A lease under 5 s, no
    // worker slot, a Graph deadline past 10 minutes or a throttle deadline under a minute is a
    // mistake to name at start, not a service that starts and never sends.
    const ranges: [string, number, number, Record<string, string>?][] = [
      ['GRAPH_REQUEST_TIMEOUT_SECONDS', 1, 600],
      ['THROTTLE_DEADLINE_SECONDS', 60, 30 * 86400],
      ['PORT', 0, 65535],
      ['METRICS_PORT', 0, 65535],
      ['WORKER_CONCURRENCY', 1, 500],
      ['LEASE_SECONDS', 5, 3600],
      ['HEARTBEAT_SECONDS', 1, 1200, { LEASE_SECONDS: '3600' }],
      ['MAX_ATTEMPTS', 1, 100],
      ['RETRY_BASE_SECONDS', 1, 3600],
      ['RETRY_MAX_SECONDS', 1, 7 * 86400, { RETRY_BASE_SECONDS: '1' }],
      ['POLL_INTERVAL_SECONDS', 1, 3600],
      ['LISTEN_CHECK_SECONDS', 1, 600],
      ['SHUTDOWN_GRACE_SECONDS', 0, 600],
      ['GRAPH_MAX_CONCURRENCY', 1, 100],
      ['MAILBOX_RATE_PER_MINUTE', 0, 100_000],
      ['MIGRATE_DEADLINE_SECONDS', 0, 86400],
    ]
    const named = (name: string, value: number, extra: Record<string, string> = {}) =>
      configProblems({ ...base, ...extra, [name]: String(value) }).some((p) =>
        p.startsWith(`${name}: `),
      )
    expect(
      ranges.map(([name, low, high, extra]) => [
        name,
        named(name, low, extra),
        named(name, high, extra),
        named(name, low - 1, extra),
        named(name, high + 1, extra),
      ]),
    ).toEqual(ranges.map(([name]) => [name, false, false, true, true]))
    // HS256 takes a key of at least 256 bits (RFC 7518 3.2): 32 characters.
    expect([
      configProblems({ ...base, API_JWT_SECRET: 'k'.repeat(31) }),
      configProblems({ ...base, API_JWT_SECRET: 'k'.repeat(32) }),
    ]).toEqual([['API_JWT_SECRET: must be at least 32 characters (HS256 key)'], []])
  })

  test('a value refused says what the variable takes, in our words, not the schema library’s', () => {
    // Never zod's "Invalid option: expected one of "debug"|…" or "Too small: expected number to be >=1".
    expect(
      [
        { LOG_LEVEL: 'verbose' },
        { MAIL_TRANSPORT: 'smtp' },
        { LISTEN_MODE: 'notify' },
        { AMBIGUOUS_SEND_POLICY: 'retry' },
        { GRAPH_ASSERTION_ALGORITHM: 'HS256' },
        { GRAPH_MAILBOX_LOOKUP: 'yes' },
        { METRICS_PORT: '65536' },
        { PORT: '70000' },
        { WORKER_CONCURRENCY: '0' },
        { MAILER_DATABASES: '[{"name":1,"url":"postgres://u@db/a"}]', DATABASE_URL: undefined },
        { MAILER_DATABASES: '["postgres://u@db/a"]', DATABASE_URL: undefined },
        // A value's kind in the API's words (config/json-kind.ts): "a boolean", as a body's is.
        { MAILER_DATABASES: '[{"name":true,"url":"postgres://u@db/a"}]', DATABASE_URL: undefined },
      ].flatMap((env) => configProblems({ ...base, ...env })),
    ).toEqual([
      'LOG_LEVEL: must be one of debug, info, warn, error',
      'MAIL_TRANSPORT: must be one of graph, file, discard',
      'LISTEN_MODE: must be one of auto, poll',
      'AMBIGUOUS_SEND_POLICY: must be one of resend, hold',
      'GRAPH_ASSERTION_ALGORITHM: must be one of PS256, RS256',
      'GRAPH_MAILBOX_LOOKUP: must be true or false (or 1 or 0)',
      'METRICS_PORT: must be from 0 to 65535',
      'PORT: must be from 0 to 65535',
      'WORKER_CONCURRENCY: must be from 1 to 500',
      'MAILER_DATABASES[0].name: must be a string, not a number',
      'MAILER_DATABASES[0]: must be an object (each entry has a "name" and a "url", and may have a "listenUrl"), not a string',
      'MAILER_DATABASES[0].name: must be a string, not a boolean',
    ])
  })

  test('a switch takes true, false, 1 or 0: any other word is named, never read as false', () => {
    const graph = graphWithSecret
    const saved = (v: string) => loadConfig({ ...graph, GRAPH_SAVE_TO_SENT_ITEMS: v }).graph
    expect(['true', '1', 'false', '0'].map((v) => saved(v)?.saveToSentItems)).toEqual([
      true,
      true,
      false,
      false,
    ])
    for (const word of ['yes', 'on', 'no']) {
      expect(configProblems({ ...graph, GRAPH_SAVE_TO_SENT_ITEMS: word })).toEqual([
        expect.stringMatching(/^GRAPH_SAVE_TO_SENT_ITEMS: /),
      ])
    }
  })

  test('a value is read without the whitespace around it, and one of whitespace only is unset', () => {
    // A secret pasted from a file keeps its newline; a variable emptied with spaces is unset.
    const c = loadConfig({
      DATABASE_URL: ` ${base.DATABASE_URL}\n`,
      MAIL_TRANSPORT: 'file ',
      LOG_LEVEL: '\tdebug',
    })
    expect([c.databases[0]?.url, c.transport, c.logLevel]).toEqual([
      base.DATABASE_URL,
      'file',
      'debug',
    ])
    expect(configProblems({ DATABASE_URL: '   ', MAIL_TRANSPORT: 'file' })).toEqual([
      'DATABASE_URL (or MAILER_DATABASES) is required',
    ])
  })

  test('MAILER_DATABASES lists at least one database, and is refused beside any DATABASE_URL, even one itself refused', () => {
    expect(configProblems({ MAIL_TRANSPORT: 'file', MAILER_DATABASES: '[]' })).toEqual([
      'MAILER_DATABASES[]: must list at least one database',
    ])
    expect(
      configProblems({
        MAIL_TRANSPORT: 'file',
        DATABASE_URL: 'mysql://x',
        MAILER_DATABASES: '[{"name":"a","url":"postgres://x/a"}]',
      }),
    ).toEqual([
      'DATABASE_URL: must be a postgres:// or postgresql:// URL',
      'MAILER_DATABASES and DATABASE_URL are both set: use one of them',
    ])
  })

  test('MAILER_DATABASES nested past what the syntax scan can follow is a problem saying so, not a crash', () => {
    // Thousands of unclosed brackets (a template gone wrong) outran the scan's stack: loadConfig
    // threw a RangeError, and check-config and serve ended on it instead of naming the variable.
    expect(
      configProblems({ MAIL_TRANSPORT: 'file', MAILER_DATABASES: '['.repeat(200_000) }),
    ).toEqual([
      'MAILER_DATABASES: is not valid JSON (nested too deeply to say where it breaks); it must be a JSON array like [{"name":"main","url":"postgres://…","listenUrl":"postgres://…"}] (listenUrl optional; in a shell, quote it with single quotes)',
    ])
  })

  test('two MAILER_DATABASES entries that lead to one database are refused, naming both, never a password', () => {
    const password = `pw-${crypto.randomUUID().slice(0, 8)}`
    const problems = (dbs: object[]) =>
      configProblems({ MAIL_TRANSPORT: 'file', MAILER_DATABASES: JSON.stringify(dbs) })
    const same = (a: object, b: object) => {
      const found = problems([
        { name: 'rpm', ...a },
        { name: 'crm', ...b },
      ])
      expect(found).toEqual([
        expect.stringMatching(/^MAILER_DATABASES: "rpm" and "crm" lead to the same database/),
      ])
      expect(found[0]).not.toContain(password)
      return found[0]
    }
    const url = `postgres://app:${password}@db.example.com/shop`
    // The same URL twice.
    expect(same({ url }, { url })).toContain('db.example.com:5432/shop')
    // The same host, port, database and user written otherwise: case, the default port, the
    // scheme's other spelling, another password, a parameter that picks no database.
    same({ url }, { url: `postgresql://app:${'other'}@DB.example.com:5432/shop?sslmode=require` })
    // One entry's direct URL is the other's URL.
    same(
      { url: 'postgres://app@pooler.example.com:6432/shop', listenUrl: url },
      { url: `postgres://app:${password}@db.example.com:5432/shop` },
    )
    // No database name: the user's.
    same({ url: 'postgres://app@db.example.com/app' }, { url: 'postgres://app@db.example.com' })
    // Other databases are not refused: another name, host or port, and on one pooler host another
    // user or endpoint (Supabase and Neon route by them to each project's own database).
    for (const other of [
      'postgres://app@db.example.com/crm',
      'postgres://app@db2.example.com/shop',
      'postgres://app@db.example.com:5433/shop',
      'postgres://app.project2@db.example.com/shop',
      'postgres://app@db.example.com/shop?options=endpoint%3Dep-2',
    ]) {
      expect([
        other,
        problems([
          { name: 'rpm', url },
          { name: 'crm', url: other },
        ]),
      ]).toEqual([other, []])
    }
  })

  test('a failure names the variable that holds the URL: DATABASE_URL, or MAILER_DATABASES even for a database named default', () => {
    const named = (env: Record<string, string>) => {
      const { databases } = loadConfig({ MAIL_TRANSPORT: 'file', ...env })
      return databases.map((d) => [
        urlVariable(d, databases, 'url'),
        urlVariable(d, databases, 'listenUrl'),
      ])
    }
    expect(named({ DATABASE_URL: 'postgres://x/a' })).toEqual([
      ['DATABASE_URL', 'LISTEN_DATABASE_URL'],
    ])
    // The operator set MAILER_DATABASES only: DATABASE_URL is no variable of theirs to fix.
    expect(named({ MAILER_DATABASES: '[{"name":"default","url":"postgres://x/a"}]' })).toEqual([
      ['MAILER_DATABASES default.url', 'MAILER_DATABASES default.listenUrl'],
    ])
    expect(
      named({
        MAILER_DATABASES:
          '[{"name":"default","url":"postgres://x/a"},{"name":"b","url":"postgres://x/b"}]',
      }),
    ).toEqual([
      ['MAILER_DATABASES default.url', 'MAILER_DATABASES default.listenUrl'],
      ['MAILER_DATABASES b.url', 'MAILER_DATABASES b.listenUrl'],
    ])
  })

  test('a database URL the driver could not use is named, and its password never echoed', () => {
    const password = `pw-${crypto.randomUUID().slice(0, 8)}`
    const problems = (env: Record<string, string>) =>
      configProblems({ MAIL_TRANSPORT: 'file', ...env })
    const bad = `postgres://u:${password}@127.0.0.1:notaport/db`
    const one = problems({ DATABASE_URL: bad })
    expect(one).toEqual([expect.stringMatching(/^DATABASE_URL: is not a valid URL/)])
    expect(problems({ DATABASE_URL: `postgres://u:${password}@db:99999/app` })).toEqual([
      expect.stringMatching(/^DATABASE_URL: is not a valid URL/),
    ])
    const listen = problems({ DATABASE_URL: base.DATABASE_URL, LISTEN_DATABASE_URL: bad })
    expect(listen).toEqual([expect.stringMatching(/^LISTEN_DATABASE_URL: is not a valid URL/)])
    const several = problems({
      MAILER_DATABASES: JSON.stringify([
        { name: 'a', url: bad },
        { name: 'b', url: 'postgres://db/b', listenUrl: `postgres://u:${password}@db:1:2/b` },
      ]),
    })
    expect(several).toHaveLength(2)
    expect(several[0]).toMatch(/^MAILER_DATABASES\[0\]\.url: is not a valid URL/)
    expect(several[1]).toMatch(/^MAILER_DATABASES\[1\]\.listenUrl: is not a valid URL/)
    expect(JSON.stringify([one, listen, several])).not.toContain(password)
    // What the driver accepts stays accepted: a Unix socket in ?host= (with or without a user), no
    // host (PGHOST or localhost), no database name (the user's), IPv6, a percent-encoded password.
    for (const url of [
      'postgres:///app?host=/var/run/postgresql',
      'postgres://u@/mydb?host=/tmp',
      'postgres:///app',
      `postgres://u:${password}@db.internal:5432`,
      `postgres://u:${encodeURIComponent(`${password}@#`)}@[::1]:5432/db`,
    ]) {
      expect([url, problems({ DATABASE_URL: url })]).toEqual([url, []])
    }
  })

  test('a port the driver cannot connect to, written as ?port= or as 0, is refused at start as :99999 is, not at every connection', () => {
    // The host part's :99999 is refused by the parser; ?port= was kept as written and each
    // connection failed: ERR_SOCKET_BAD_PORT "Received NaN" (abc), ECONNREFUSED (0).
    const problems = (env: Record<string, string>) =>
      configProblems({ MAIL_TRANSPORT: 'file', ...env })
    const port = (variable: string) =>
      `${variable}: its port must be a whole number from 1 to 65535 (the host's :5432, or ?port=5432)`
    expect(
      ['?port=abc', '?port=99999', '?port=-5', '?port=1.5', '?port=0'].map((q) =>
        problems({ DATABASE_URL: `postgres://u:p@db/app${q}` }),
      ),
    ).toEqual(Array(5).fill([port('DATABASE_URL')]))
    expect(problems({ DATABASE_URL: 'postgres://u:p@db:0/app' })).toEqual([port('DATABASE_URL')])
    expect(
      problems({
        MAILER_DATABASES:
          '[{"name":"a","url":"postgres://db/a","listenUrl":"postgres://db/a?port=x"}]',
      }),
    ).toEqual([port('MAILER_DATABASES[0].listenUrl')])
    for (const url of [
      'postgres://u@db:6543/app',
      'postgres://u@db/app?port=6543',
      'postgres://u@db/app?port=',
    ])
      expect([url, problems({ DATABASE_URL: url })]).toEqual([url, []])
  })

  test('a database URL that gives one setting two values (sslmode twice, a port in the host and in ?port=) is refused, not read as the last one', () => {
    // The driver takes the last: `?sslmode=verify-full&sslmode=disable` (a platform's parameters
    // appended to the user's) connected without TLS, the certificate check written first dropped.
    const password = `pw-${crypto.randomUUID().slice(0, 8)}`
    const problems = (env: Record<string, string>) =>
      configProblems({ MAIL_TRANSPORT: 'file', ...env })
    const twice = (variable: string, key: string) =>
      `${variable}: gives ${key} twice, with different values (the driver would take the last): give it once`
    expect([
      problems({ DATABASE_URL: 'postgres://u@db/app?sslmode=verify-full&sslmode=disable' }),
      problems({
        LISTEN_DATABASE_URL: 'postgres://u@db/app?sslmode=disable&sslmode=verify-full',
        DATABASE_URL: 'postgres://u@db/app',
      }),
      problems({ DATABASE_URL: `postgres://u:${password}@db/app?password=other` }),
      problems({ DATABASE_URL: `postgres://u@db/app?password=${password}&password=other` }),
      problems({ DATABASE_URL: 'postgres://u@db:5432/app?port=6543' }),
    ]).toEqual([
      [twice('DATABASE_URL', 'sslmode')],
      [twice('LISTEN_DATABASE_URL', 'sslmode')],
      [twice('DATABASE_URL', 'password')],
      [twice('DATABASE_URL', 'password')],
      [twice('DATABASE_URL', 'port')],
    ])
    // The same value twice says one thing: taken.
    for (const url of [
      'postgres://u@db/app?sslmode=verify-full&sslmode=verify-full',
      `postgres://u:${password}@db/app?password=${password}`,
      'postgres://u@db:5432/app?port=5432',
      // One host or port however written: a host name in another case (names are
      // case-insensitive), an IPv6 address with its zeros, a port with a leading zero.
      'postgres://u@DB.internal/app?host=db.internal',
      'postgres://u@[::1]/app?host=0:0:0:0:0:0:0:1',
      'postgres://u@db:5432/app?port=05432',
    ])
      expect([url, problems({ DATABASE_URL: url })]).toEqual([url, []])
  })

  test("a database URL's sslrootcert, sslcert or sslkey that cannot be read is named as such, not as a bad host or port, and a device is never read", () => {
    // The driver's parser reads these files as it parses the URL: a path that does not exist was
    // refused as "is not a valid URL (check the host and port …)", and /dev/null taken as an empty
    // CA (every connection then refused); /dev/zero read until the memory ran out.
    const problems = (url: string) => configProblems({ MAIL_TRANSPORT: 'file', DATABASE_URL: url })
    expect([
      problems('postgres://u:p@db/app?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem'),
      problems('postgres://u:p@db/app?sslmode=verify-full&sslrootcert=/dev/null'),
      problems('postgres://u:p@db/app?sslcert=/nonexistent/c.pem&sslkey=/nonexistent/k.pem'),
      problems('postgres://u:p@db/app?sslmode=verify-full&sslrootcert=/dev/zero'),
      problems(`postgres://u:p@db/app?sslmode=verify-full&sslrootcert=${tmpdir()}`),
    ]).toEqual([
      [
        'DATABASE_URL: its sslrootcert cannot be read (ENOENT): set it to the path of the PEM file (deploy guide, step 4)',
      ],
      [
        'DATABASE_URL: its sslrootcert is not a regular file (a character device): set it to the path of the PEM file (deploy guide, step 4)',
      ],
      [
        'DATABASE_URL: its sslcert cannot be read (ENOENT): set it to the path of the PEM file (deploy guide, step 4)',
      ],
      [
        'DATABASE_URL: its sslrootcert is not a regular file (a character device): set it to the path of the PEM file (deploy guide, step 4)',
      ],
      [
        'DATABASE_URL: its sslrootcert is not a regular file (a directory): set it to the path of the PEM file (deploy guide, step 4)',
      ],
    ])
  })

  test('an sslmode the driver does not know (sslmode=disabled, a slip of disable) is refused at start, not taken as TLS required', () => {
    // node-postgres reads any sslmode but disable (and no-verify) as TLS with its certificate
    // checked: "disabled" asked a server without TLS for it, every connection then refused
    // (tls_refused), the opposite of what was written.
    const problems = (url: string) => configProblems({ MAIL_TRANSPORT: 'file', DATABASE_URL: url })
    // The fixes offered are the two the guides recommend, not require or prefer (node-postgres 9
    // reads them as no certificate check) nor allow (refused, below).
    const one =
      "DATABASE_URL: its sslmode is not one the driver knows: use sslmode=verify-full (TLS, the server's certificate checked), or sslmode=disable for a server that takes no TLS, on a private network only (deploy guide, step 4)"
    expect(
      ['disabled', 'verify_full', 'Require', ''].map((mode) =>
        problems(`postgres://u:p@db/app?sslmode=${mode}`),
      ),
    ).toEqual([[one], [one], [one], [one]])
    expect(
      configProblems({
        MAIL_TRANSPORT: 'file',
        MAILER_DATABASES:
          '[{"name":"a","url":"postgres://db/a","listenUrl":"postgres://db/a?sslmode=off"}]',
      }),
    ).toEqual([one.replace('DATABASE_URL', 'MAILER_DATABASES[0].listenUrl')])
    // An empty file for the CA: a device is refused, as the test before shows.
    const ca = join(mkdtempSync(join(tmpdir(), 'outbox-ca-')), 'ca.pem')
    writeFileSync(ca, '')
    for (const mode of ['disable', 'prefer', 'require', 'verify-ca', 'verify-full', 'no-verify'])
      expect([mode, problems(`postgres://u:p@db/app?sslmode=${mode}&sslrootcert=${ca}`)]).toEqual([
        mode,
        [],
      ])
  })

  test("sslmode=allow (libpq's: no TLS first, TLS if the server insists) is refused at start, naming what to use, not read as verify-full", () => {
    // node-postgres has no case for allow and reads it as TLS with the certificate checked, with
    // uselibpqcompat=true too: a server without TLS, the very one allow is written for, refused
    // every connection (tls_refused) with no word of why.
    const problems = (url: string) => configProblems({ MAIL_TRANSPORT: 'file', DATABASE_URL: url })
    const allow = (variable: string) =>
      `${variable}: sslmode=allow is not one the driver can do (it would ask for TLS and check the certificate, where libpq tries without TLS first): use sslmode=disable for a server that takes no TLS, on a private network only, or sslmode=verify-full (deploy guide, step 4)`
    expect([
      problems('postgres://u:p@db/app?sslmode=allow'),
      problems('postgres://u:p@db/app?sslmode=allow&uselibpqcompat=true'),
      configProblems({
        MAIL_TRANSPORT: 'file',
        MAILER_DATABASES:
          '[{"name":"a","url":"postgres://db/a?sslmode=allow","listenUrl":"postgres://db/a"}]',
      }),
    ]).toEqual([
      [allow('DATABASE_URL')],
      [allow('DATABASE_URL')],
      [allow('MAILER_DATABASES[0].url')],
    ])
  })

  test('a password with an unencoded # (what follows is a fragment the driver drops) is refused, not connected to a host cut out of the password', () => {
    const problems = (env: Record<string, string>) =>
      configProblems({ MAIL_TRANSPORT: 'file', ...env })
    // Parsed as user app, password "pa", host "ss", no database: 'getaddrinfo ENOTFOUND ss' at
    // every connection, a piece of the password in the log.
    const url = 'postgres://app:pa@ss#w/rd@db.internal:5432/app'
    const found = problems({ DATABASE_URL: url })
    expect(found).toEqual([expect.stringMatching(/^DATABASE_URL: has a # /)])
    expect(found[0]).toContain('%23')
    expect(JSON.stringify(found)).not.toContain('ss#w')
  })

  test('the Graph request timeout is held to the lease only when Graph sends', () => {
    const short = { LEASE_SECONDS: '5', HEARTBEAT_SECONDS: '2' }
    for (const transport of ['file', 'discard']) {
      expect(loadConfig({ ...base, ...short, MAIL_TRANSPORT: transport }).worker.leaseSeconds).toBe(
        5,
      )
    }
    const graph = { ...graphWithSecret, ...short }
    expect(() => loadConfig(graph)).toThrow('GRAPH_REQUEST_TIMEOUT_SECONDS: must be at most half')
    // A heartbeat every second: with every 2, a send could start with 2 s of lease left.
    expect(
      loadConfig({ ...graph, GRAPH_REQUEST_TIMEOUT_SECONDS: '2', HEARTBEAT_SECONDS: '1' }).graph
        ?.requestTimeoutMs,
    ).toBe(2000)
  })

  test('a heartbeat so far apart that a Graph send could start with less lease left than its timeout is refused, naming the most it may be; unset, it is shortened to fit', () => {
    expect([
      configProblems({ ...graphWithSecret, HEARTBEAT_SECONDS: '28' }),
      configProblems({ ...graphWithSecret, HEARTBEAT_SECONDS: '30' }),
      configProblems({ ...base, HEARTBEAT_SECONDS: '30' }),
    ]).toEqual([
      [],
      [
        "HEARTBEAT_SECONDS: must be at most LEASE_SECONDS minus GRAPH_REQUEST_TIMEOUT_SECONDS minus 2 (28 with 60 and 30; 30 set): a Graph send starts only with its request timeout and 1 s more of its lease left, and between two heartbeats a lease keeps LEASE_SECONDS minus HEARTBEAT_SECONDS, less 1 s for the heartbeat's answer; set HEARTBEAT_SECONDS to 28 or less (or leave it unset), GRAPH_REQUEST_TIMEOUT_SECONDS to 28 or less, or LEASE_SECONDS to 62 or more",
      ],
      [],
    ])
    const beat = (env: Record<string, string>) =>
      loadConfig({ ...graphWithSecret, ...env }).worker.heartbeatSeconds
    expect([
      beat({}),
      beat({ LEASE_SECONDS: '6', GRAPH_REQUEST_TIMEOUT_SECONDS: '3' }),
      beat({ LEASE_SECONDS: '90', GRAPH_REQUEST_TIMEOUT_SECONDS: '45' }),
      loadConfig({ ...base, LEASE_SECONDS: '6' }).worker.heartbeatSeconds,
    ]).toEqual([20, 1, 30, 2])
  })

  test('Graph settings: their defaults, one credential (a secret, or a certificate with its key), a lookup that can find what it looks for', () => {
    const graph = {
      ...base,
      MAIL_TRANSPORT: 'graph',
      GRAPH_TENANT_ID: '8f2a61c4-0b3e-4d5f-9a7b-1c2d3e4f5a6b',
      GRAPH_CLIENT_ID: '0c4b9f1e-6a2d-4e8b-b3a7-5d9c2e1f4a8b',
      MAIL_FROM: 'outbox@example.com',
    }
    const secret = { ...graph, GRAPH_CLIENT_SECRET: 's' }
    expect(loadConfig(secret).graph).toMatchObject({
      saveToSentItems: true,
      requestTimeoutMs: 30_000,
      mailboxLookup: false,
      ambiguousSendPolicy: 'resend',
      assertionAlgorithm: 'PS256',
    })
    // Half the lease is the bound: a request may outlive neither its lease nor a heartbeat's save.
    expect([
      configProblems({ ...secret, GRAPH_REQUEST_TIMEOUT_SECONDS: '30' }),
      configProblems({ ...secret, GRAPH_REQUEST_TIMEOUT_SECONDS: '31' }),
    ]).toEqual([
      [],
      ['GRAPH_REQUEST_TIMEOUT_SECONDS: must be at most half of LEASE_SECONDS (30 with 60; 31 set)'],
    ])
    // With a HEARTBEAT_SECONDS set that needs less, the most it may be is that: told half (30), a
    // user who set 30 was then refused for the heartbeat.
    const [told] = configProblems({
      ...secret,
      GRAPH_REQUEST_TIMEOUT_SECONDS: '40',
      HEARTBEAT_SECONDS: '29',
    })
    expect(told).toBe(
      'GRAPH_REQUEST_TIMEOUT_SECONDS: must be at most half of LEASE_SECONDS, and at most LEASE_SECONDS minus HEARTBEAT_SECONDS minus 2 (29 with 60 and 29; 40 set)',
    )
    expect(
      configProblems({ ...secret, GRAPH_REQUEST_TIMEOUT_SECONDS: '29', HEARTBEAT_SECONDS: '29' }),
    ).toEqual([])
    // A heartbeat past half the lease beside a refused timeout is judged against the most the timeout
    // may be (no timeout accepted lets it be more): told only half, a user who set the heartbeat to
    // half and the timeout to the most it may be was refused again, for the heartbeat.
    const pastBoth = { ...secret, GRAPH_REQUEST_TIMEOUT_SECONDS: '40', HEARTBEAT_SECONDS: '40' }
    expect(configProblems(pastBoth)).toEqual([
      'GRAPH_REQUEST_TIMEOUT_SECONDS: must be at most half of LEASE_SECONDS (30 with 60; 40 set)',
      'HEARTBEAT_SECONDS: must be at most half of LEASE_SECONDS, and at most LEASE_SECONDS minus GRAPH_REQUEST_TIMEOUT_SECONDS minus 2 (28 with 60 and the most GRAPH_REQUEST_TIMEOUT_SECONDS may be, 30; 40 set); set HEARTBEAT_SECONDS to 28 or less (or leave it unset), or LEASE_SECONDS to 82 or more',
    ])
    // Each way out it names ends the refusals in one step.
    for (const env of [
      { HEARTBEAT_SECONDS: '28', GRAPH_REQUEST_TIMEOUT_SECONDS: '30' },
      { GRAPH_REQUEST_TIMEOUT_SECONDS: '30', HEARTBEAT_SECONDS: undefined },
      { LEASE_SECONDS: '82' },
    ]) {
      expect(configProblems({ ...pastBoth, ...env })).toEqual([])
    }
    // loadConfig judges which credential variables are set, not their PEM (graph-credential.ts
    // reads that at start): placeholders, no key material in the repository.
    const cert = 'certificate-pem'
    const key = 'private-key-pem'
    const required =
      'a Graph credential is required: GRAPH_CERTIFICATE(_FILE) with GRAPH_PRIVATE_KEY(_FILE), or GRAPH_CLIENT_SECRET'
    const both = 'GRAPH_CLIENT_SECRET and a certificate are both set: use one credential'
    expect([
      configProblems({ ...graph, GRAPH_CERTIFICATE: cert }),
      configProblems({ ...graph, GRAPH_PRIVATE_KEY_FILE: '/k.pem' }),
      configProblems({ ...secret, GRAPH_PRIVATE_KEY: key }),
      configProblems({ ...secret, GRAPH_CERTIFICATE_FILE: '/c.pem' }),
      configProblems({
        ...graph,
        GRAPH_CERTIFICATE: cert,
        GRAPH_CERTIFICATE_FILE: '/c.pem',
        GRAPH_PRIVATE_KEY: key,
        GRAPH_PRIVATE_KEY_FILE: '/k.pem',
      }),
      configProblems({
        ...secret,
        GRAPH_MAILBOX_LOOKUP: 'true',
        GRAPH_SAVE_TO_SENT_ITEMS: 'false',
      }),
    ]).toEqual([
      [required],
      [required],
      [both],
      [both],
      [
        'GRAPH_CERTIFICATE and GRAPH_CERTIFICATE_FILE are both set: use one',
        'GRAPH_PRIVATE_KEY and GRAPH_PRIVATE_KEY_FILE are both set: use one',
      ],
      [
        'GRAPH_MAILBOX_LOOKUP=true needs GRAPH_SAVE_TO_SENT_ITEMS=true: the lookup finds sent messages in Sent Items',
      ],
    ])
  })

  test('role api needs no transport: the Graph credential, MAIL_FROM and the Graph timeout are not asked of it', () => {
    const env = {
      DATABASE_URL: base.DATABASE_URL,
      MAIL_TRANSPORT: 'graph',
      API_JWT_SECRET: 'x'.repeat(32),
      LEASE_SECONDS: '5',
      HEARTBEAT_SECONDS: '2',
    }
    const api = loadConfig(env, { role: 'api' })
    expect(api.graph).toBeNull()
    expect(api.databases.map((d) => d.name)).toEqual(['default'])
    // Every other role sends, so each of those is still named.
    for (const role of [undefined, 'all', 'worker'] as const) {
      const problems = configProblems(env, role ? { role } : {})
      for (const name of [
        'GRAPH_TENANT_ID',
        'GRAPH_CLIENT_ID',
        'MAIL_FROM',
        'GRAPH_REQUEST_TIMEOUT_SECONDS',
        'a Graph credential is required',
      ]) {
        expect(problems.join('\n')).toContain(name)
      }
    }
    // What the API itself needs is still checked under role api.
    expect(() =>
      loadConfig({ ...env, API_JWT_SECRET: 'short', DATABASE_URL: 'mysql://x' }, { role: 'api' }),
    ).toThrow(/DATABASE_URL[\s\S]*API_JWT_SECRET/)
  })

  test("GRAPH_API_URL is checked at start: it ends in Graph's version, /v1.0 or /beta", () => {
    const problems = (url: string) =>
      configProblems({
        ...graphWithSecret,
        // An authority of no known cloud: each Graph host's own cloud is not the point here.
        GRAPH_AUTHORITY_URL: 'http://127.0.0.1:9',
        GRAPH_API_URL: url,
      })
    for (const url of [
      'https://graph.microsoft.com/v1.0',
      'https://graph.microsoft.us/v1.0/',
      'https://microsoftgraph.chinacloudapi.cn/beta',
      'http://127.0.0.1:9/v1.0',
      'https://egress.example/graph/v1.0',
    ]) {
      expect(problems(url)).toEqual([])
    }
    // Before, each passed the start, and Graph answered every send 400 (BadRequest "Invalid
    // version.", or no such resource): every row failed at once, the whole backlog.
    for (const url of [
      'https://graph.microsoft.com',
      'https://graph.microsoft.us/',
      'https://graph.microsoft.com/v2.0',
      'https://graph.microsoft.com/v1.0/users',
      'https://graph.microsoft.com/v1.0?tenant=x',
    ]) {
      expect(problems(url)).toEqual([expect.stringMatching(/^GRAPH_API_URL: must end in/)])
    }
  })

  test('GRAPH_AUTHORITY_URL is checked at start: the authority host, the tenant in GRAPH_TENANT_ID', () => {
    const problems = (url: string) =>
      configProblems({
        ...base,
        MAIL_TRANSPORT: 'graph',
        GRAPH_TENANT_ID: 'contoso.onmicrosoft.com',
        GRAPH_CLIENT_ID: '0c4b9f1e-6a2d-4e8b-b3a7-5d9c2e1f4a8b',
        GRAPH_CLIENT_SECRET: 's',
        MAIL_FROM: 'outbox@example.com',
        // A Graph URL of no known cloud: each authority's own cloud is not the point here.
        GRAPH_API_URL: 'https://egress.example/graph/v1.0',
        GRAPH_AUTHORITY_URL: url,
      })
    for (const url of [
      'https://login.microsoftonline.com',
      'https://login.microsoftonline.us/',
      'https://login.chinacloudapi.cn',
      'http://127.0.0.1:9',
    ]) {
      expect(problems(url)).toEqual([])
    }
    // MSAL's authority holds the tenant; here the token URL adds it again
    // (…/contoso.onmicrosoft.com/contoso.onmicrosoft.com/oauth2/v2.0/token): no token, ever.
    for (const url of [
      'https://login.microsoftonline.com/contoso.onmicrosoft.com',
      'https://login.microsoftonline.com/organizations/',
      'https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token',
      'https://login.microsoftonline.com?tenant=x',
    ]) {
      expect(problems(url)).toEqual([
        expect.stringMatching(/^GRAPH_AUTHORITY_URL: must be the authority's origin/),
      ])
    }
  })

  test("GRAPH_AUTHORITY_URL and GRAPH_API_URL name the same Microsoft cloud: one's tokens are refused by another's Graph", () => {
    const problems = (authority: string, api: string) =>
      configProblems({
        ...graphWithSecret,
        GRAPH_AUTHORITY_URL: authority,
        GRAPH_API_URL: api,
      })
    for (const [authority, api] of [
      ['https://login.microsoftonline.com', 'https://graph.microsoft.com/v1.0'],
      ['https://login.microsoftonline.us', 'https://graph.microsoft.us/v1.0'],
      ['https://login.microsoftonline.us', 'https://dod-graph.microsoft.us/v1.0'],
      ['https://login.chinacloudapi.cn', 'https://microsoftgraph.chinacloudapi.cn/v1.0'],
      ['https://login.partner.microsoftonline.cn', 'https://microsoftgraph.chinacloudapi.cn/beta'],
      ['https://contoso.ciamlogin.com', 'https://graph.microsoft.com/v1.0'],
      // Hosts of no cloud we know (a fake, an egress proxy) are not judged.
      ['http://127.0.0.1:9', 'https://graph.microsoft.us/v1.0'],
      ['https://login.microsoftonline.us', 'https://egress.example/graph/v1.0'],
    ] as const) {
      expect([authority, api, problems(authority, api)]).toEqual([authority, api, []])
    }
    // Before, each started: the token request asks the authority's cloud for the other cloud's
    // Graph (Entra refuses the scope), or Graph refuses the other cloud's token: no mail, ever.
    for (const [authority, api, hint] of [
      [
        'https://login.microsoftonline.us',
        'https://graph.microsoft.com/v1.0',
        'https://graph.microsoft.us/v1.0',
      ],
      [
        'https://login.chinacloudapi.cn',
        'https://graph.microsoft.com/v1.0',
        'https://microsoftgraph.chinacloudapi.cn/v1.0',
      ],
      [
        'https://login.microsoftonline.com',
        'https://graph.microsoft.us/v1.0',
        'https://login.microsoftonline.us',
      ],
      [
        'https://contoso.ciamlogin.com',
        'https://microsoftgraph.chinacloudapi.cn/v1.0',
        'https://graph.microsoft.com/v1.0',
      ],
      // The DoD's Graph is the US Government cloud's too.
      [
        'https://login.microsoftonline.com',
        'https://dod-graph.microsoft.us/v1.0',
        'https://login.microsoftonline.us',
      ],
    ] as const) {
      const found = problems(authority, api)
      expect([
        authority,
        api,
        found.length,
        found[0]?.startsWith('GRAPH_AUTHORITY_URL'),
        found[0]?.includes(hint),
      ]).toEqual([authority, api, 1, true, true])
    }
  })

  test('MAIL_FROM is checked at start: a mailbox every row without a sender could go out from', () => {
    const problems = (env: Record<string, string>) => configProblems({ ...base, ...env })
    const graph = {
      MAIL_TRANSPORT: 'graph',
      GRAPH_TENANT_ID: '8f2a61c4-0b3e-4d5f-9a7b-1c2d3e4f5a6b',
      GRAPH_CLIENT_ID: '0c4b9f1e-6a2d-4e8b-b3a7-5d9c2e1f4a8b',
      GRAPH_CLIENT_SECRET: 's',
    }
    const userId = '8f2a61c4-0b3e-4d5f-9a7b-1c2d3e4f5a6b'
    for (const from of ['outbox@example.com', 'Outbox <outbox@example.com>']) {
      expect(problems({ MAIL_FROM: from })).toEqual([])
      expect(problems({ ...graph, MAIL_FROM: from })).toEqual([])
    }
    expect(problems({ ...graph, MAIL_FROM: userId })).toEqual([])
    // Before, each of these passed the start and failed every row without a sender, for good.
    // A control character, since 0043 (the renderer refuses it: every row would fail).
    // (named as the invisible character it holds, where it is).
    for (const from of ['outbox', 'outbox@example', 'Outbox <nope>', 'out\u0001box@example.com']) {
      expect(problems({ ...graph, MAIL_FROM: from })).toEqual([
        expect.stringMatching(
          /^MAIL_FROM: (must be an e-mail address|holds an invisible character, U\+0001 )/,
        ),
      ])
    }
    // The operator's own display name may hold anything, an @ or a comma too: the sender is the
    // last <address>, shown on every mail sent (a name holding another address is refused only in
    // a template's rendered row data, where it is a list in one string: render.test.ts).
    for (const from of [
      'ACME@Home, Inc. <support@example.com>',
      'Sales (sales@example.com; EU) <sales@example.com>',
    ]) {
      expect([from, problems({ ...graph, MAIL_FROM: from })]).toEqual([from, []])
    }
    expect(problems({ MAIL_FROM: '"Orders <orders@example.com>" <orders@example.com>' })).toEqual(
      [],
    )
    // Past mailer.is_email_address's 320 characters: the renderer refuses it for every row.
    const long = `outbox@${Array.from('abcdef', (c) => c.repeat(60)).join('.')}.example`
    expect(long.length).toBe(380)
    expect(problems({ ...graph, MAIL_FROM: `Outbox <${long}>` })).toEqual([
      expect.stringMatching(/^MAIL_FROM: must be an e-mail address/),
    ])
    // Only Graph knows mailboxes by id; a file is written with a From header.
    expect(problems({ MAIL_FROM: userId })).toEqual([
      expect.stringMatching(/^MAIL_FROM: must be an e-mail address/),
    ])
    // discard writes nothing: a staging copy of a Graph deployment's settings must start as is.
    expect(problems({ MAIL_TRANSPORT: 'discard', MAIL_FROM: userId })).toEqual([])
    expect(problems({ MAIL_TRANSPORT: 'discard', MAIL_FROM: 'outbox' })).toEqual([
      expect.stringMatching(/^MAIL_FROM: must be an e-mail address/),
    ])
    // An API-only process sends nothing: MAIL_FROM is not its concern.
    expect(() =>
      loadConfig({ ...base, MAIL_FROM: 'outbox', API_JWT_SECRET: 'x'.repeat(32) }, { role: 'api' }),
    ).not.toThrow()
  })

  test('MAIL_FROM_ALLOWED is a list of addresses, apart by commas or blanks, kept by case-insensitive key; unset, any sender', () => {
    expect(loadConfig(base).allowedSenders).toBeNull()
    expect([
      ...(loadConfig({
        ...base,
        MAIL_FROM_ALLOWED: ' NoReply@Acme.example, billing@acme.example\n',
      }).allowedSenders ?? []),
    ]).toEqual(['noreply@acme.example', 'billing@acme.example'])
    // Every role: an API-only process refuses at enqueue what the workers would refuse at send.
    const problems = (value: string, role: 'all' | 'api' = 'all') =>
      configProblems(
        { ...base, MAIL_FROM_ALLOWED: value, API_JWT_SECRET: 'x'.repeat(32) },
        { role },
      )
    for (const role of ['all', 'api'] as const) {
      expect(problems('ok@acme.example, Boss <ceo@acme.example>', role)).toEqual([
        'MAIL_FROM_ALLOWED: entry 2 is not an e-mail address (list plain addresses, apart by commas)',
        'MAIL_FROM_ALLOWED: entry 3 is not an e-mail address (list plain addresses, apart by commas)',
      ])
    }
    // A row names its sender by address: an id could match none.
    expect(problems('8f2a61c4-0b3e-4d5f-9a7b-1c2d3e4f5a6b')).toEqual([
      'MAIL_FROM_ALLOWED: entry 1 is a Graph user id: list the mailbox\'s e-mail address, which rows name in "from"',
    ])
    // Separators alone list no mailbox: taken, every row naming a sender failed sender_not_allowed.
    for (const value of [',', ' , ,', ',,'])
      expect([value, problems(value)]).toEqual([
        value,
        [
          'MAIL_FROM_ALLOWED: lists no mailbox (only commas or blanks): list the addresses rows may name in "from", or unset it to let them name any',
        ],
      ])
  })

  test('METRICS_PORT moves /metrics to a port of its own, which must differ from PORT', () => {
    expect(loadConfig({ ...base, METRICS_PORT: '9091' }).http).toEqual({
      host: '0.0.0.0',
      port: 8080,
      metricsPort: 9091,
    })
    for (const env of [{ METRICS_PORT: '8080' }, { PORT: '9000', METRICS_PORT: '9000' }]) {
      expect(() => loadConfig({ ...base, ...env })).toThrow(/METRICS_PORT: must differ from PORT/)
    }
    for (const bad of ['70000', '-1', 'metrics'])
      expect(() => loadConfig({ ...base, METRICS_PORT: bad })).toThrow(/METRICS_PORT/)
  })

  test('METRICS_PORT=0 is a port the system chooses, as PORT=0 is: beside PORT=0 too (two ports, each chosen)', () => {
    expect(loadConfig({ ...base, METRICS_PORT: '0' }).http.metricsPort).toBe(0)
    expect(loadConfig({ ...base, PORT: '0', METRICS_PORT: '0' }).http).toEqual({
      host: '0.0.0.0',
      port: 0,
      metricsPort: 0,
    })
  })

  test('HOST is an IP address or a host name, or a problem named at start', () => {
    for (const host of [
      '0.0.0.0',
      '127.0.0.1',
      '::',
      '::1',
      'localhost',
      'fly-local-6pn',
      'a.b.c.',
      '[::]',
      '[::1]',
    ]) {
      expect(loadConfig({ ...base, HOST: host }).http.host).toBe(host)
    }
    for (const host of [
      'not_a_host',
      'http://example.com',
      '127.0.0.1:8080',
      'a..b',
      '-lead',
      'sp ace',
    ]) {
      expect(() => loadConfig({ ...base, HOST: host })).toThrow(/HOST: must be an IP address/)
    }
  })

  test('a HOST whose last part is a number is no host name: refused, not read by the system as a shortened address', () => {
    // Taken as a host name, the system read it as an address of the old forms: 0 and 2130706433
    // listened on 0.0.0.0 and 127.0.0.1, 127.1 on 127.0.0.1; 1.5 and 00010 failed at bind with
    // EADDRNOTAVAIL, 9999999999 with ENOTCONN.
    const numeric =
      'HOST: must be an IP address written in full (0.0.0.0, 127.0.0.1, ::) or a host name whose last part is not a number: the system reads 127.1 or 2130706433 as a shortened address'
    expect(
      ['0', '127.1', '2130706433', '9999999999', '00010', '1.5', '0x7f.1', '0x10', 'db.1.'].map(
        (host) => configProblems({ ...base, HOST: host }),
      ),
    ).toEqual(Array(9).fill([numeric]))
    for (const host of ['1a', 'db-1', 'host.example1', '10.0.0.1', '1.example', '0.0.0.0'])
      expect([host, configProblems({ ...base, HOST: host })]).toEqual([host, []])
  })

  test('an http(s) URL variable that is no URL is one problem, named once', () => {
    const problemsOf = (env: Record<string, string | undefined>) =>
      configProblems({ ...base, ...env })
    for (const name of ['GRAPH_API_URL', 'GRAPH_AUTHORITY_URL', 'API_JWKS_URL']) {
      for (const value of ['not a url', 'graph.microsoft.com/v1.0', 'ftp://graph.example']) {
        const extra = name === 'API_JWKS_URL' ? { API_JWT_ISSUER: 'i', API_JWT_AUDIENCE: 'a' } : {}
        expect(problemsOf({ ...extra, [name]: value })).toEqual([`${name}: must be an http(s) URL`])
      }
    }
    const jwks = {
      API_JWKS_URL: 'http://127.0.0.1:9/keys/',
      API_JWT_ISSUER: 'i',
      API_JWT_AUDIENCE: 'a',
    }
    expect(loadConfig({ ...base, ...jwks }).api.jwksUrl).toBe('http://127.0.0.1:9/keys')
  })

  test('a Microsoft host written http:// is refused: the credential, the Graph token or the API keys would cross in the clear', () => {
    // Taken, the token request (the client secret or assertion) went to http://login.microsoftonline.com
    // as written, each Graph request's bearer token to http://graph.microsoft.com, and the API's keys
    // came over plain http, where anyone on the way could put their own.
    const tenant = '8f2a61c4-0b3e-4d5f-9a7b-1c2d3e4f5a6b'
    const jwks = {
      API_JWT_ISSUER: `https://login.microsoftonline.com/${tenant}/v2.0`,
      API_JWT_AUDIENCE: 'a',
    }
    expect([
      configProblems({
        ...graphWithSecret,
        GRAPH_AUTHORITY_URL: 'http://login.microsoftonline.com',
      }),
      configProblems({ ...graphWithSecret, GRAPH_API_URL: 'HTTP://Graph.Microsoft.com/v1.0' }),
      configProblems({
        ...base,
        ...jwks,
        API_JWKS_URL: `http://login.microsoftonline.com/${tenant}/discovery/v2.0/keys`,
      }),
    ]).toEqual([
      [
        'GRAPH_AUTHORITY_URL: must be https:// for a Microsoft host (login.microsoftonline.com): the token request carries the app’s credential, which plain http sends in the clear',
      ],
      [
        'GRAPH_API_URL: must be https:// for a Microsoft host (graph.microsoft.com): each request carries the Graph token and the mail, which plain http sends in the clear',
      ],
      [
        'API_JWKS_URL: must be https:// for a Microsoft host (login.microsoftonline.com): keys fetched over plain http can be replaced on the way, and a token signed with such a key would be taken',
      ],
    ])
    // Any other host (a fake, a proxy on the machine) may be http.
    expect(
      configProblems({
        ...graphWithSecret,
        GRAPH_AUTHORITY_URL: 'http://127.0.0.1:9',
        GRAPH_API_URL: 'http://127.0.0.1:9/v1.0',
      }),
    ).toEqual([])
  })

  test('--help lists every environment variable DESIGN.md names', async () => {
    const design = await Bun.file(new URL('../../../shared/DESIGN.md', import.meta.url))
      .text()
      .catch(() => '')
    const named = [...design.matchAll(/\*\*`([A-Z][A-Z0-9_]+)`\*\*/g)].map((m) => m[1]!)
    const listed = new Set(ENV_VARS.map((v) => v.name))
    const contractVars = [
      'DATABASE_URL',
      'LISTEN_DATABASE_URL',
      'MAILER_DATABASES',
      'MAIL_TRANSPORT',
      'MAIL_FILE_DIR',
      'MAIL_FROM',
      'GRAPH_TENANT_ID',
      'GRAPH_CLIENT_ID',
      'GRAPH_CERTIFICATE',
      'GRAPH_CERTIFICATE_FILE',
      'GRAPH_PRIVATE_KEY',
      'GRAPH_PRIVATE_KEY_FILE',
      'GRAPH_CLIENT_SECRET',
      'GRAPH_AUTHORITY_URL',
      'GRAPH_API_URL',
      'PORT',
      'HOST',
      'API_JWT_SECRET',
      'API_JWKS_URL',
      'LOG_LEVEL',
      'WORKER_CONCURRENCY',
      'LEASE_SECONDS',
      'HEARTBEAT_SECONDS',
      'MAX_ATTEMPTS',
      'POLL_INTERVAL_SECONDS',
      'SHUTDOWN_GRACE_SECONDS',
      'GRAPH_MAX_CONCURRENCY',
      'MAILBOX_RATE_PER_MINUTE',
    ]
    for (const v of [
      ...contractVars,
      ...named.filter((n) => /_(URL|ID|SECONDS|FILE|KEY)$|^MAIL/.test(n)),
    ]) {
      expect(listed.has(v)).toBe(true)
    }
  })
})

describe('an Entra issuer and audience that no Entra token can carry', () => {
  const tenant = '72f988bf-86f1-41af-91ab-2d7cd011db47'
  const client = '6e74172b-be56-4843-9ff4-e66a39bb12e3'
  const jwks = {
    ...base,
    API_JWKS_URL: `https://login.microsoftonline.com/${tenant}/discovery/v2.0/keys`,
  }
  const refusal = (issuer: string, audience: string) => {
    try {
      loadConfig({ ...jwks, API_JWT_ISSUER: issuer, API_JWT_AUDIENCE: audience })
    } catch (e) {
      return (e as Error).message
    }
    return null
  }

  test('the pairs of the deploy guide start', () => {
    expect(refusal(`https://login.microsoftonline.com/${tenant}/v2.0`, client)).toBeNull()
    expect(refusal(`https://sts.windows.net/${tenant}/`, `api://${client}`)).toBeNull()
    // A v1 token asked for by client id carries the bare id.
    expect(refusal(`https://sts.windows.net/${tenant}/`, client)).toBeNull()
  })

  test("the issuers of Entra's national clouds and of Entra External ID start", () => {
    // US Government: v1 tokens carry the public cloud's issuer, v2 its own host; China (21Vianet):
    // its own v1 host, and v2 login.partner.microsoftonline.cn (not the authority's host); External
    // ID: the tenant id as the subdomain too.
    for (const issuer of [
      `https://login.microsoftonline.us/${tenant}/v2.0`,
      `https://login.partner.microsoftonline.cn/${tenant}/v2.0`,
      `https://sts.chinacloudapi.cn/${tenant}/`,
      `https://${tenant}.ciamlogin.com/${tenant}/v2.0`,
    ]) {
      expect([issuer, refusal(issuer, issuer.endsWith('/') ? `api://${client}` : client)]).toEqual([
        issuer,
        null,
      ])
    }
  })

  test("a near miss of a national cloud's or External ID's issuer is refused at start", () => {
    const cases: [string, string, string, string][] = [
      [
        "China's authority host, not its issuer's",
        `https://login.chinacloudapi.cn/${tenant}/v2.0`,
        client,
        `API_JWT_ISSUER=https://login.partner.microsoftonline.cn/${tenant}/v2.0`,
      ],
      [
        'US Government: the authority, not an issuer',
        `https://login.microsoftonline.us/${tenant}`,
        client,
        '/v2.0',
      ],
      [
        'US Government: a tenant GUID in capitals',
        `https://login.microsoftonline.us/${tenant.toUpperCase()}/v2.0`,
        client,
        `API_JWT_ISSUER=https://login.microsoftonline.us/${tenant}/v2.0`,
      ],
      [
        'China v1 without its trailing slash',
        `https://sts.chinacloudapi.cn/${tenant}`,
        `api://${client}`,
        'ends with /',
      ],
      [
        'China v2 with the Application ID URI',
        `https://login.partner.microsoftonline.cn/${tenant}/v2.0`,
        `api://${client}`,
        `API_JWT_AUDIENCE=${client}`,
      ],
      [
        "External ID: the tenant's name as the subdomain",
        `https://contoso.ciamlogin.com/${tenant}/v2.0`,
        client,
        `API_JWT_ISSUER=https://${tenant}.ciamlogin.com/${tenant}/v2.0`,
      ],
      [
        "External ID: the tenant's domain in the path",
        'https://contoso.ciamlogin.com/contoso.onmicrosoft.com/v2.0',
        client,
        'tenant id',
      ],
    ]
    for (const [label, issuer, audience, hint] of cases) {
      const message = refusal(issuer, audience)
      expect([label, message?.includes('API_JWT_'), message?.includes(hint)]).toEqual([
        label,
        true,
        true,
      ])
    }
  })

  test('each near miss is refused at start, saying what Entra puts in its tokens', () => {
    const cases: [string, string, string, string][] = [
      [
        'v2 with the Application ID URI',
        `https://login.microsoftonline.com/${tenant}/v2.0`,
        `api://${client}`,
        `API_JWT_AUDIENCE=${client}`,
      ],
      [
        'v2 with a trailing slash',
        `https://login.microsoftonline.com/${tenant}/v2.0/`,
        client,
        'no trailing /',
      ],
      [
        'v1 without its trailing slash',
        `https://sts.windows.net/${tenant}`,
        `api://${client}`,
        'ends with /',
      ],
      [
        'the authority, not an issuer',
        `https://login.microsoftonline.com/${tenant}`,
        client,
        '/v2.0',
      ],
      [
        'a domain for the tenant',
        'https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0',
        client,
        'tenant id',
      ],
      ['common', 'https://login.microsoftonline.com/common/v2.0', client, 'tenant id'],
      // Pasted from the portal in capitals: Entra writes the GUID lower-case, and iss is compared exactly.
      [
        'a v2 tenant GUID in capitals',
        `https://login.microsoftonline.com/${tenant.toUpperCase()}/v2.0`,
        client,
        `API_JWT_ISSUER=https://login.microsoftonline.com/${tenant}/v2.0`,
      ],
      [
        'a v1 tenant GUID in capitals',
        `https://sts.windows.net/${tenant.toUpperCase()}/`,
        `api://${client}`,
        `API_JWT_ISSUER=https://sts.windows.net/${tenant}/`,
      ],
      [
        'the host in capitals',
        `https://Login.MicrosoftOnline.com/${tenant}/v2.0`,
        client,
        `API_JWT_ISSUER=https://login.microsoftonline.com/${tenant}/v2.0`,
      ],
    ]
    for (const [label, issuer, audience, hint] of cases) {
      const message = refusal(issuer, audience)
      expect([label, message?.includes('API_JWT_'), message?.includes(hint)]).toEqual([
        label,
        true,
        true,
      ])
    }
  })
})
