// checkConfig: every problem named, no secret echoed, real databases and a strict fake Entra reached.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { randomBytes, randomUUID } from 'node:crypto'
import { chmod, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { redactor } from '../../src/check-config/redactor.ts'
import { checkConfig } from '../../src/check-config.ts'
import { loadConfig } from '../../src/config.ts'
import { silentLogger } from '../../src/log.ts'
import { createTransport } from '../../src/transport-wiring.ts'
import { testCluster } from '../preload.ts'
import { closedPort } from '../support/closed-port.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import {
  generateTestCertificate,
  graphEnvFor,
  startFakeGraph,
  type TestCertificate,
} from '../support/fake-graph.ts'
import { outboundMail } from '../support/outbound-mail.ts'
import { adminQuery } from '../support/postgres.ts'
import { startTransactionPooler } from '../support/transaction-pooler.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

// Generated per run so that a leak is unmistakable and nothing secret sits in the repo.
const dbPassword = `pw-${randomBytes(12).toString('hex')}`
const clientSecret = `cs-${randomBytes(18).toString('base64url')}`
const jwtSecret = randomBytes(32).toString('base64url')

let db: TestDb
let cert: TestCertificate
const emptyDb = `outbox_checkcfg_${process.pid}`

beforeAll(async () => {
  db = await createTestDb()
  cert = await generateTestCertificate()
  const cluster = await testCluster()
  await adminQuery(cluster.admin, `create database ${emptyDb}`)
})
afterAll(async () => {
  await db?.drop()
  const cluster = await testCluster()
  await adminQuery(cluster.admin, `drop database if exists ${emptyDb} with (force)`)
})

const discard = (extra: Record<string, string | undefined> = {}) => ({
  MAIL_TRANSPORT: 'discard',
  API_JWT_SECRET: jwtSecret,
  ...extra,
})

function expectNoSecrets(result: unknown, ...secrets: string[]) {
  const printed = JSON.stringify(result)
  for (const s of secrets) expect(printed).not.toContain(s)
}

describe('without --connect', () => {
  test('a bad environment names every problem and echoes no value', async () => {
    const r = await checkConfig(
      {
        DATABASE_URL: `mysql://app:${dbPassword}@db.internal/app`,
        MAIL_TRANSPORT: 'graph',
        GRAPH_CLIENT_SECRET: clientSecret,
        LEASE_SECONDS: 'soon',
        API_JWT_SECRET: 'short',
      },
      { connect: false },
    )
    expect(r.ok).toBe(false)
    const text = r.problems.join('\n')
    for (const name of ['DATABASE_URL', 'LEASE_SECONDS', 'API_JWT_SECRET']) {
      expect(text).toContain(name)
    }
    expectNoSecrets(r, dbPassword, clientSecret, 'short')
  })

  test('a DATABASE_URL the driver cannot parse is a problem, named without its password', async () => {
    const r = await checkConfig(
      discard({ DATABASE_URL: `postgres://app:${dbPassword}@127.0.0.1:notaport/app` }),
      { connect: false },
    )
    expect(r.ok).toBe(false)
    expect(r.problems).toEqual([expect.stringMatching(/^DATABASE_URL: is not a valid URL/)])
    expectNoSecrets(r, dbPassword)
  })

  test('a password that is a common word masks the URL’s password only, not the word elsewhere', async () => {
    // With the password `postgres`, the problem read "must be a ***:// or ***ql:// URL".
    const r = await checkConfig(discard({ DATABASE_URL: 'mysql://postgres:postgres@db/app' }), {
      connect: false,
    })
    expect(r.problems).toEqual(['DATABASE_URL: must be a postgres:// or postgresql:// URL'])
  })

  test('a message quoting a database URL shows it with its password masked', () => {
    const url = `postgresql://app:${dbPassword}@db.example.com:5432/app`
    const odd = ['p@ss', 'w/rd'].join(':')
    const encoded = `postgres://app:${encodeURIComponent(odd)}@db.example.com/app`
    const redact = redactor({
      DATABASE_URL: url,
      MAILER_DATABASES: JSON.stringify([{ name: 'a', url: encoded, listenUrl: encoded }]),
    })
    expect(redact(`could not reach ${url} (app)`)).toBe(
      'could not reach postgresql://app:***@db.example.com:5432/app (app)',
    )
    expect(redact(`user app:${dbPassword}@db.example.com`)).toBe('user app:***@db.example.com')
    expect(redact(`at ${encoded}`)).toBe('at postgres://app:***@db.example.com/app')
    expect(redact('app:p@ss:w/rd@db.example.com')).toBe('app:***@db.example.com')
    // pg takes the password as a query parameter too.
    const inQuery = `postgres://app@db.example.com/app?sslmode=disable&password=${dbPassword}`
    expect(redactor({ DATABASE_URL: inQuery })(`at ${inQuery}`)).toBe(
      'at postgres://app@db.example.com/app?sslmode=disable&password=***',
    )
  })

  test('every secret variable is masked, and a listed database’s direct URL apart from its pooled one', () => {
    const direct = `postgres://owner:${dbPassword}@direct.example.com/app`
    const otherPassword = 'other'
    const redact = redactor({
      GRAPH_CLIENT_SECRET: clientSecret,
      GRAPH_PRIVATE_KEY: 'private-key-body',
      API_JWT_SECRET: jwtSecret,
      MAILER_DATABASES: JSON.stringify([
        {
          name: 'a',
          url: `postgres://app:${otherPassword}@pooler.example.com/app`,
          listenUrl: direct,
        },
      ]),
    })
    expect(redact(`${clientSecret} | private-key-body | ${jwtSecret} | ${direct}`)).toBe(
      '*** | *** | *** | postgres://owner:***@direct.example.com/app',
    )
  })

  test('missing Graph settings are each named', async () => {
    const r = await checkConfig(
      { DATABASE_URL: 'postgres://h/db', MAIL_TRANSPORT: 'graph', API_JWT_SECRET: jwtSecret },
      { connect: false },
    )
    expect(r.ok).toBe(false)
    const text = r.problems.join('\n')
    for (const name of ['GRAPH_TENANT_ID', 'GRAPH_CLIENT_ID', 'MAIL_FROM', 'GRAPH_CERTIFICATE']) {
      expect(text).toContain(name)
    }
  })

  test('the API role needs no Graph settings; the roles that send still name each one', async () => {
    const env = {
      DATABASE_URL: 'postgres://h/db',
      MAIL_TRANSPORT: 'graph',
      API_JWT_SECRET: jwtSecret,
    }
    const api = await checkConfig(env, { connect: false, role: 'api' })
    expect(api).toMatchObject({ ok: true, problems: [] })
    expect(api.checks.join('\n')).toContain('no transport')
    for (const role of ['all', 'worker'] as const) {
      const r = await checkConfig(env, { connect: false, role })
      expect(r.problems.join('\n')).toContain('GRAPH_TENANT_ID')
    }
  })

  test('a GRAPH_MAX_CONCURRENCY above Outlook’s 4 concurrent requests per app is a warning, for the roles that send', async () => {
    const env = {
      DATABASE_URL: 'postgres://h/db',
      MAIL_TRANSPORT: 'graph',
      GRAPH_TENANT_ID: randomUUID(),
      GRAPH_CLIENT_ID: randomUUID(),
      GRAPH_CLIENT_SECRET: clientSecret,
      MAIL_FROM: 'outbox@contoso.example',
      API_JWT_SECRET: jwtSecret,
    }
    const named = (r: { checks: string[] }) =>
      r.checks.filter((c) => c.includes('GRAPH_MAX_CONCURRENCY'))
    for (const role of ['all', 'worker'] as const) {
      const r = await checkConfig({ ...env, GRAPH_MAX_CONCURRENCY: '8' }, { connect: false, role })
      expect(r).toMatchObject({ ok: true, problems: [] })
      expect(named(r)).toEqual([
        "warning: GRAPH_MAX_CONCURRENCY is 8, above Outlook's 4 concurrent requests per app: Graph answers a request past them 429 (MailboxConcurrency), and its mailbox waits as after any throttle",
      ])
    }
    for (const n of [undefined, '4', '2'])
      expect(
        named(await checkConfig({ ...env, GRAPH_MAX_CONCURRENCY: n }, { connect: false })),
      ).toEqual([])
    // An API-only process sends nothing.
    const api = await checkConfig(
      { ...env, GRAPH_MAX_CONCURRENCY: '8' },
      { connect: false, role: 'api' },
    )
    expect(named(api)).toEqual([])
  })

  test('the API role needs auth; a worker-only deployment does not', async () => {
    const env = { DATABASE_URL: 'postgres://h/db', MAIL_TRANSPORT: 'discard' }
    const api = await checkConfig(env, { connect: false })
    expect(api.ok).toBe(false)
    expect(api.problems.join('\n')).toContain('API_JWT_SECRET or API_JWKS_URL')
    const worker = await checkConfig(env, { connect: false, role: 'worker' })
    expect(worker).toMatchObject({ ok: true, problems: [] })
  })

  test('file or discard without MAIL_FROM is valid, with a warning that rows naming no sender fail', async () => {
    for (const transport of ['file', 'discard'] as const) {
      const env = { DATABASE_URL: 'postgres://h/db', MAIL_TRANSPORT: transport }
      const r = await checkConfig(env, { connect: false, role: 'worker' })
      expect(r).toMatchObject({ ok: true, problems: [] })
      expect(r.checks).toContain(
        'warning: MAIL_FROM is not set: a row that names no "from" fails with code no_sender',
      )
      const named = await checkConfig(
        { ...env, MAIL_FROM: 'outbox@example.com' },
        { connect: false, role: 'worker' },
      )
      expect(named.checks.join('\n')).not.toContain('warning: MAIL_FROM')
      // An API-only process sends nothing: no sender to miss.
      const api = await checkConfig(
        { ...env, API_JWT_SECRET: jwtSecret },
        { connect: false, role: 'api' },
      )
      expect(api.checks.join('\n')).not.toContain('warning: MAIL_FROM')
    }
  })

  test('--role api with a MAIL_FROM that is no address is valid with a warning (a worker refuses it); with none, or one a worker could send from, no warning', async () => {
    const env = {
      DATABASE_URL: 'postgres://h/db',
      MAIL_TRANSPORT: 'graph',
      API_JWT_SECRET: jwtSecret,
    }
    const mailFromWarnings = async (extra: Record<string, string>) => {
      const r = await checkConfig({ ...env, ...extra }, { connect: false, role: 'api' })
      expect(r).toMatchObject({ ok: true, problems: [] })
      return r.checks.filter((c) => c.startsWith('warning: MAIL_FROM'))
    }
    expect(await mailFromWarnings({ MAIL_FROM: 'Outbox <outbox@>' })).toEqual([
      'warning: MAIL_FROM is no address a worker could send from (MAIL_FROM: must be an e-mail address ("Name <address>" is fine) or a Graph user id (a GUID)): serve --role api sends nothing and starts, but GET /v1/outbox/{id} cannot tell from it the sender of a row naming none (rendered.from null, fromNote says why), and a worker refuses to start with it: set it to the workers\' MAIL_FROM, or unset it',
    ])
    expect(await mailFromWarnings({})).toEqual([])
    expect(await mailFromWarnings({ MAIL_FROM: 'Outbox <outbox@example.com>' })).toEqual([])
  })

  test('the senders rows may name are reported: any without MAIL_FROM_ALLOWED, else how many it lists (never which), and MAIL_FROM left out of it warned', async () => {
    const env = discard({
      DATABASE_URL: 'postgres://h/db',
      MAIL_FROM: 'Acme <noreply@acme.example>',
    })
    const senders = async (extra: Record<string, string>) =>
      (await checkConfig({ ...env, ...extra }, { connect: false })).checks.filter((c) =>
        /senders|MAIL_FROM_ALLOWED/.test(c),
      )
    expect(await senders({})).toEqual([
      'senders: a row may name in "from" any mailbox the app registration may send as (MAIL_FROM_ALLOWED unset; with Mail.Send alone, every mailbox of the organisation unless Exchange confines the app: deploy guide, step 3)',
    ])
    const listed =
      'senders: a row may name in "from" only the 2 mailbox(es) MAIL_FROM_ALLOWED lists (others fail sender_not_allowed); one naming none goes from MAIL_FROM'
    expect(
      await senders({ MAIL_FROM_ALLOWED: 'NoReply@acme.example,billing@acme.example' }),
    ).toEqual([listed])
    const unlisted = await senders({
      MAIL_FROM_ALLOWED: 'support@acme.example,billing@acme.example',
    })
    expect(unlisted).toEqual([
      listed,
      'warning: MAIL_FROM_ALLOWED does not list MAIL_FROM\'s address: rows naming no "from" still go from it, but a row naming it in "from" fails sender_not_allowed',
    ])
    expect(unlisted.join('\n')).not.toContain('acme.example')
    const bad = await checkConfig({ ...env, MAIL_FROM_ALLOWED: 'nope' }, { connect: false })
    expect(bad.problems).toEqual([
      'MAIL_FROM_ALLOWED: entry 1 is not an e-mail address (list plain addresses, apart by commas)',
    ])
  })

  test('with the file transport, a MAIL_FILE_DIR it cannot write into is a problem; one it can is a check', async () => {
    // serve started and every row failed later, after its attempts (file_write_failed: ENOTDIR,
    // EACCES for the image's non-root user in a directory of root's), while check-config said OK.
    const dir = await mkdtemp(join(tmpdir(), 'outbox-checkcfg-'))
    try {
      const file = join(dir, 'not-a-directory')
      await writeFile(file, 'x')
      const env = (fileDir: string) => ({
        DATABASE_URL: 'postgres://h/db',
        MAIL_TRANSPORT: 'file',
        MAIL_FROM: 'outbox@example.com',
        MAIL_FILE_DIR: fileDir,
      })
      for (const fileDir of [file, join(file, 'mail')]) {
        const r = await checkConfig(env(fileDir), { connect: false, role: 'worker' })
        expect([fileDir, r.ok, r.problems]).toEqual([
          fileDir,
          false,
          [
            `MAIL_FILE_DIR: ${file} is not a directory, so the file transport cannot write ${fileDir}`,
          ],
        ])
      }
      // As a user other than root, whatever user runs the test (root's own case is below).
      const fine = await checkConfig(env(join(dir, 'mail', 'out')), {
        connect: false,
        role: 'worker',
        euid: 10001,
      })
      expect(fine).toMatchObject({ ok: true, problems: [] })
      expect(fine.checks).toContain(
        `MAIL_FILE_DIR: ${join(dir, 'mail', 'out')} can be written (made in ${dir} at the first mail)`,
      )
      // Nothing is made by the check itself.
      expect(await readdir(dir)).toEqual(['not-a-directory'])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('run as root, which may write anywhere, it does not say serve can write MAIL_FILE_DIR: it says who may', async () => {
    // check-config in a container shell runs as root; serve as the image's uid 10001, which met
    // EACCES on a directory of mode 0755 owned by root while check-config said "can be written".
    const dir = await mkdtemp(join(tmpdir(), 'outbox-checkcfg-root-'))
    try {
      const noneButRoot = join(dir, 'none-but-root')
      const anyone = join(dir, 'anyone')
      const shared = join(dir, 'shared')
      // Write without search (x): no one but root may make a file in it (a chmod -R 666).
      const noSearch = join(dir, 'no-search')
      for (const [path, mode] of [
        [noneButRoot, 0o555],
        [anyone, 0o777],
        [shared, 0o770],
        [noSearch, 0o666],
      ] as const) {
        await mkdir(path)
        await chmod(path, mode)
      }
      const check = (fileDir: string) =>
        checkConfig(
          {
            DATABASE_URL: 'postgres://h/db',
            MAIL_TRANSPORT: 'file',
            MAIL_FROM: 'outbox@example.com',
            MAIL_FILE_DIR: fileDir,
          },
          { connect: false, role: 'worker', euid: 0 },
        )
      const { uid, gid } = await stat(noneButRoot)
      for (const [fileDir, at, mode] of [
        [noneButRoot, noneButRoot, '0555'],
        [join(noneButRoot, 'mail'), noneButRoot, '0555'],
        [noSearch, noSearch, '0666'],
      ] as const) {
        const r = await check(fileDir)
        const lines = r.checks.filter((l) => l.includes('MAIL_FILE_DIR'))
        expect([fileDir, r.ok, lines]).toEqual([
          fileDir,
          true,
          [
            `warning: MAIL_FILE_DIR: only root may write into ${at} (owner uid ${uid}, group ${gid}, mode ${mode}); check-config runs as root, which may: a serve run as another user (the image's uid 10001) fails every row (file_write_failed)`,
          ],
        ])
      }
      const open = await check(join(anyone, 'out'))
      expect(open.checks.filter((l) => l.includes('MAIL_FILE_DIR'))).toEqual([
        `MAIL_FILE_DIR: ${join(anyone, 'out')} can be written (made in ${anyone} at the first mail; any user may write into it: mode 0777)`,
      ])
      // Owned by whoever runs the test: root as owner is no other user.
      const who = uid === 0 ? `group ${gid}` : `uid ${uid} (its owner), group ${gid}`
      const some = await check(shared)
      expect(some.checks.filter((l) => l.includes('MAIL_FILE_DIR'))).toEqual([
        `MAIL_FILE_DIR: ${shared} can be written by root, as check-config runs; not checked for the user serve runs as: ${who} may write into ${shared} (mode 0770)`,
      ])
      // Nothing is made by the check itself.
      expect((await readdir(dir)).sort()).toEqual([
        'anyone',
        'no-search',
        'none-but-root',
        'shared',
      ])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('a variable it does not read (a typo) is a warning naming it and the one meant, valid or not', async () => {
    const env = discard({
      DATABASE_URL: 'postgres://h/db',
      GRAPH_MAILBOX_LOOKUPS: 'true',
      WORKER_CONCURENCY: 'secret-looking-value',
    })
    const r = await checkConfig(env, { connect: false })
    expect(r).toMatchObject({ ok: true, problems: [] })
    expect(r.checks).toContain(
      'warning: GRAPH_MAILBOX_LOOKUPS is set, but outbox-mailer reads no variable of that name: it is ignored (did you mean GRAPH_MAILBOX_LOOKUP?)',
    )
    expect(r.checks.join('\n')).toContain('WORKER_CONCURENCY is set')
    expectNoSecrets(r, 'secret-looking-value')
    // An invalid configuration still names it: MAIL_FROM "missing" is the typo's doing.
    const invalid = await checkConfig(
      { ...env, MAIL_TRANSPORT: 'graph', MAIL_FORM: 'a@example.com' },
      { connect: false },
    )
    expect(invalid.ok).toBe(false)
    expect(invalid.problems.join('\n')).toContain('MAIL_FROM is required')
    expect(invalid.checks.join('\n')).toContain('MAIL_FORM is set, but')
    expect(invalid.checks.join('\n')).toContain('did you mean MAIL_FROM?')
  })

  test('a key that does not belong to the certificate is named, and no PEM is printed', async () => {
    const other = await generateTestCertificate()
    const r = await checkConfig(
      {
        DATABASE_URL: 'postgres://h/db',
        MAIL_TRANSPORT: 'graph',
        GRAPH_TENANT_ID: 'contoso.onmicrosoft.com',
        GRAPH_CLIENT_ID: '11111111-1111-1111-1111-111111111111',
        MAIL_FROM: 'notifications@example.com',
        GRAPH_CERTIFICATE: cert.certPem,
        GRAPH_PRIVATE_KEY: other.keyPem,
        API_JWT_SECRET: jwtSecret,
      },
      { connect: false },
    )
    expect(r.ok).toBe(false)
    expect(r.problems.join('\n')).toContain('GRAPH_PRIVATE_KEY')
    const keyBody = other.keyPem.split('\n')[1]!
    expectNoSecrets(r, keyBody, '-----BEGIN', jwtSecret)
  })

  test('a certificate past its end date is a problem here, where serve starts with it (its transport loads it and refuses each token request)', async () => {
    // The asymmetry of a certificate ending: check-config, run before a deploy, says so; serve,
    // restarted after that end, keeps its API up (credential-refused-readiness.test.ts).
    const expired = await generateTestCertificate({
      notBefore: new Date(Date.now() - 400 * 86_400_000),
      notAfter: new Date(Date.now() - 86_400_000),
    })
    const env = {
      DATABASE_URL: 'postgres://h/db',
      MAIL_TRANSPORT: 'graph',
      GRAPH_TENANT_ID: 'contoso.onmicrosoft.com',
      GRAPH_CLIENT_ID: '11111111-1111-1111-1111-111111111111',
      MAIL_FROM: 'notifications@example.com',
      GRAPH_CERTIFICATE: expired.certPem,
      GRAPH_PRIVATE_KEY: expired.keyPem,
      API_JWT_SECRET: jwtSecret,
    }
    const r = await checkConfig(env, { connect: false })
    expect(r.ok).toBe(false)
    expect(r.problems).toContainEqual(expect.stringMatching(/GRAPH_CERTIFICATE: expired at \d{4}-/))
    expect(() => createTransport(loadConfig(env), silentLogger)).not.toThrow()
  })

  test("a URL whose TLS skips the server's certificate check today is a warning naming its variable; sslmode=require, prefer and verify-full are not (node-postgres 8 checks them; its own warning speaks of require and prefer)", async () => {
    const certificateWarnings = async (env: Record<string, string>) =>
      (await checkConfig(discard(env), { connect: false })).checks.filter((c) =>
        c.includes('certificate'),
      )
    const url = (q: string) => `postgres://app:${dbPassword}@db.example.com/app?${q}`
    for (const [q, how] of [
      ['sslmode=no-verify', 'sslmode=no-verify'],
      ['uselibpqcompat=true&sslmode=require', 'uselibpqcompat=true with sslmode=require'],
      ['sslmode=prefer&uselibpqcompat=true', 'uselibpqcompat=true with sslmode=prefer'],
    ] as const)
      expect({ q, warned: await certificateWarnings({ DATABASE_URL: url(q) }) }).toEqual({
        q,
        warned: [
          `warning: DATABASE_URL asks for TLS without checking the server's certificate (${how}): whatever is on the network path can pose as the database; use sslmode=verify-full, with sslrootcert=<its CA's PEM> for a private CA (deploy guide, step 4)`,
        ],
      })
    for (const q of [
      'sslmode=require',
      'sslmode=prefer',
      'sslmode=verify-full',
      'ssl=true',
      'sslmode=disable',
      'uselibpqcompat=true&sslmode=verify-full',
    ])
      expect({ q, warned: await certificateWarnings({ DATABASE_URL: url(q) }) }).toEqual({
        q,
        warned: [],
      })
    // Each variable apart: a listed database's direct URL only.
    const listed = await certificateWarnings({
      MAILER_DATABASES: JSON.stringify([
        { name: 'a', url: url('sslmode=verify-full'), listenUrl: url('sslmode=no-verify') },
      ]),
    })
    expect(listed.map((w) => w.split(' asks ')[0])).toEqual([
      'warning: MAILER_DATABASES a.listenUrl',
    ])
  })

  test('a valid environment passes and says the network was not checked', async () => {
    const r = await checkConfig(discard({ DATABASE_URL: 'postgres://h/db' }), { connect: false })
    expect(r).toMatchObject({ ok: true, problems: [] })
    expect(r.checks.join('\n')).toContain('--connect')
  })
})

describe('with --connect', () => {
  test('API_JWKS_URL is fetched: an empty key set is a problem, a key set a check; a worker-only deployment skips it', async () => {
    let keys: unknown[] = []
    const server = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      fetch: () => Response.json({ keys }),
    })
    try {
      const env = {
        MAIL_TRANSPORT: 'discard',
        DATABASE_URL: db.url,
        API_JWKS_URL: `http://127.0.0.1:${server.port}/keys`,
        API_JWT_ISSUER: 'https://issuer.example',
        API_JWT_AUDIENCE: 'outbox-mailer',
      }
      const empty = await checkConfig(env, { connect: true })
      expect(empty.problems).toEqual([
        'API_JWKS_URL: answered HTTP 200 without a non-empty "keys" list',
      ])
      keys = [{ kty: 'oct', kid: 'k1' }]
      const one = await checkConfig(env, { connect: true })
      expect([one.ok, one.checks.includes('API_JWKS_URL: 1 key(s)')]).toEqual([true, true])
      keys = []
      const worker = await checkConfig(env, { connect: true, role: 'worker' })
      expect([worker.ok, worker.checks.some((c) => c.startsWith('API_JWKS_URL'))]).toEqual([
        true,
        false,
      ])
    } finally {
      await server.stop(true)
    }
  })

  test('a reachable, migrated database passes', async () => {
    const r = await checkConfig(discard({ DATABASE_URL: db.url }), { connect: true })
    expect(r).toMatchObject({ ok: true, problems: [] })
    const text = r.checks.join('\n')
    expect(text).toContain('database "default" (DATABASE_URL): reachable')
    expect(text).toContain('schema current')
  })

  test('the application’s triggers: a template missing, or naming a column its table lacks (or its columns option leaves out), is a warning before the first insert meets it', async () => {
    await db.pool.query(`
      create table public.cc_orders (id bigint generated always as identity primary key,
        customer_email text, meta jsonb, items jsonb);
      insert into mailer.templates (name, subject, text_body, to_addresses) values
        ('cc_ok', 'Order {{id}} {{meta.plan}}', '{{#items}}{{sku}}{{/items}}{{^meta}}none{{/meta}}',
         array['{{customer_email}}']),
        ('cc_typo', 'Order {{id}} ({{phone}})', '{{customer_emial}}', array['{{customer_email}}']);
      -- Stored before 0177 refused it (its check off, as that release's): a body of a comment alone.
      alter table mailer.templates disable trigger templates_checked;
      insert into mailer.templates (name, subject, text_body, to_addresses) values
        ('cc_blank', 'Order {{id}}', '{{! the body, one day }}{{#items}} {{/items}}', array['{{customer_email}}']);
      alter table mailer.templates enable trigger templates_checked;
      ${[
        ['ok_mail', `'cc_ok'`],
        ['typo_mail', `'cc_typo'`],
        ['kept_mail', `'cc_ok', '{"columns": ["id", "customer_email"]}'`],
        ['ghost_mail', `'cc_ghost'`],
        ['blank_mail', `'cc_blank'`],
        ['off_mail', `'cc_ghost'`],
      ]
        .map(
          ([name, args]) =>
            `create trigger ${name} after insert on public.cc_orders for each row execute function mailer.enqueue_from_row(${args});`,
        )
        .join('\n')}
      alter table public.cc_orders disable trigger off_mail;`)
    try {
      const r = await checkConfig(discard({ DATABASE_URL: db.url }), { connect: true })
      expect(r).toMatchObject({ ok: true, problems: [] })
      expect(r.checks.filter((c) => c.includes('trigger'))).toEqual([
        'warning: database "default": trigger blank_mail on public.cc_orders: template "cc_blank" has a text_body that renders blank for every row (no placeholder and no text but blanks outside its tags): every mail it enqueues fails with template_error; fix the template, then retry the rows failed so (README, "How it works")',
        'warning: database "default": trigger ghost_mail on public.cc_orders names template "cc_ghost", which does not exist: every insert into public.cc_orders fails (mailer: unknown template); insert it into mailer.templates (deploy guide, step 7)',
        'warning: database "default": trigger kept_mail on public.cc_orders: template "cc_ok" names {{meta.plan}} (subject), {{items}} (text_body), {{meta}} (text_body), which no column of public.cc_orders that the trigger\'s "columns" option keeps holds: every mail it enqueues fails with template_error; fix the template or the option, then retry the rows failed so (README, "How it works")',
        'warning: database "default": trigger typo_mail on public.cc_orders: template "cc_typo" names {{phone}} (subject), {{customer_emial}} (text_body), which no column of public.cc_orders holds: every mail it enqueues fails with template_error; fix the template, then retry the rows failed so (README, "How it works")',
      ])
    } finally {
      await db.pool.query(`
        drop table public.cc_orders;
        delete from mailer.templates where name in ('cc_ok', 'cc_typo', 'cc_blank');`)
    }
  })

  test('a newer release’s migrations pass if they keep this release working, and are a problem if not', async () => {
    const ahead = await createTestDb()
    try {
      await ahead.pool.query(
        `insert into mailer.schema_migrations (version, name, checksum, older_binaries_compatible)
         values (9000, '9000_new_index', 'x', true)`,
      )
      const kept = await checkConfig(discard({ DATABASE_URL: ahead.url }), { connect: true })
      expect(kept).toMatchObject({ ok: true, problems: [] })
      expect(kept.checks.join('\n')).toContain(
        'schema current (also has 9000 from a newer release, which this one works with)',
      )
      await ahead.pool.query(
        `insert into mailer.schema_migrations (version, name, checksum) values (9001, '9001_x', 'y')`,
      )
      const refused = await checkConfig(discard({ DATABASE_URL: ahead.url }), { connect: true })
      expect(refused.ok).toBe(false)
      expect(refused.problems.join('\n')).toContain('migration 9001 (9001_x)')
    } finally {
      await ahead.drop()
    }
  })

  test('an unmigrated database is a warning: the release_command migrates it', async () => {
    const cluster = await testCluster()
    const r = await checkConfig(discard({ DATABASE_URL: cluster.url(emptyDb) }), {
      connect: true,
    })
    expect(r).toMatchObject({ ok: true, problems: [] })
    expect(r.checks.join('\n')).toMatch(/warning: .*outbox-mailer migrate/)
  })

  test('a closed port is a problem naming the database and its variable, without the password', async () => {
    const port = await closedPort()
    const r = await checkConfig(
      discard({ DATABASE_URL: `postgres://app:${dbPassword}@127.0.0.1:${port}/app` }),
      { connect: true, timeoutMs: 3000 },
    )
    expect(r.ok).toBe(false)
    expect(r.problems).toHaveLength(1)
    expect(r.problems[0]).toContain('database "default" (DATABASE_URL): cannot connect')
    expectNoSecrets(r, dbPassword)
  })

  test('a wrong password is a problem naming the cause and what to check, without the password', async () => {
    const cluster = await testCluster()
    const url = new URL(cluster.url(emptyDb))
    url.password = dbPassword
    const r = await checkConfig(discard({ DATABASE_URL: url.toString() }), {
      connect: true,
      timeoutMs: 5000,
    })
    expect(r.ok).toBe(false)
    expect(r.problems).toEqual([
      expect.stringMatching(
        /^database "default" \(DATABASE_URL\): cannot connect: .*28P01.*the password was refused \(or the role does not exist\): check the user and password/,
      ),
    ])
    expectNoSecrets(r, dbPassword)
  })

  test('a password that is part of the host name leaves the host name whole', async () => {
    const word = 'internal'
    const r = await checkConfig(
      discard({ DATABASE_URL: `postgres://app:${word}@db.${word}.invalid:5432/app` }),
      { connect: true, timeoutMs: 3000 },
    )
    expect(r.problems).toEqual([
      expect.stringMatching(
        /^database "default" \(DATABASE_URL\): cannot connect: .*db\.internal\.invalid/,
      ),
    ])
  })

  test('an unreachable direct URL is named as LISTEN_DATABASE_URL', async () => {
    const port = await closedPort()
    const r = await checkConfig(
      discard({
        DATABASE_URL: db.url,
        LISTEN_DATABASE_URL: `postgres://app:${dbPassword}@127.0.0.1:${port}/app`,
      }),
      { connect: true },
    )
    expect(r.ok).toBe(false)
    expect(r.problems.join('\n')).toContain('(LISTEN_DATABASE_URL): cannot connect')
    expectNoSecrets(r, dbPassword)
  })

  test('a LISTEN URL behind a transaction pooler is a problem, found as serve finds it; LISTEN_MODE=poll skips it', async () => {
    const pooler = await startTransactionPooler(db.url)
    try {
      // The pooler accepts the LISTEN, and the next statement runs on a session that never ran it.
      const apart = await checkConfig(
        discard({ DATABASE_URL: db.url, LISTEN_DATABASE_URL: pooler.url }),
        { connect: true, timeoutMs: 3000 },
      )
      expect(apart.ok).toBe(false)
      expect(apart.problems).toEqual([
        expect.stringContaining(
          'database "default" (LISTEN_DATABASE_URL): LISTEN does not hold on this connection (a transaction pooler?)',
        ),
      ])
      // Through the pooler alone: serve would fall back to polling, which the deployment should say.
      const same = await checkConfig(discard({ DATABASE_URL: pooler.url }), {
        connect: true,
        timeoutMs: 3000,
      })
      expect(same.ok).toBe(false)
      expect(same.problems).toEqual([
        expect.stringContaining('database "default" (DATABASE_URL): LISTEN does not hold'),
      ])
      expect(same.checks.join('\n')).toContain('database "default" (DATABASE_URL): reachable')
      // A check meant to pass has the command's own bound (10 s): one bound covers the connect and
      // the wait for the probe's notification, and 3 s failed a direct session answering 3.1 s late.
      // 3 s stays where that wait is the outcome (the notification a pooler drops).
      const polling = await checkConfig(
        discard({ DATABASE_URL: pooler.url, LISTEN_MODE: 'poll' }),
        {
          connect: true,
        },
      )
      expect(polling).toMatchObject({ ok: true, problems: [] })
      const direct = await checkConfig(
        discard({ DATABASE_URL: pooler.url, LISTEN_DATABASE_URL: db.url }),
        { connect: true },
      )
      expect(direct).toMatchObject({ ok: true, problems: [] })
      expect(direct.checks.join('\n')).toContain('(LISTEN_DATABASE_URL): reachable, LISTEN holds')
    } finally {
      await pooler.close()
    }
  })

  test('a pooler that gives the LISTEN client the same server session each time (PgBouncer when quiet) is found too', async () => {
    // pg_listening_channels() answers yes on that one session; only a notification from another
    // session, dropped while no transaction of the client runs, shows LISTEN does not hold.
    const pooler = await startTransactionPooler(db.url, 1)
    try {
      const r = await checkConfig(
        discard({ DATABASE_URL: db.url, LISTEN_DATABASE_URL: pooler.url }),
        { connect: true, timeoutMs: 3000 },
      )
      expect(r.problems).toEqual([
        expect.stringContaining(
          'database "default" (LISTEN_DATABASE_URL): LISTEN does not hold on this connection (a transaction pooler?)',
        ),
      ])
    } finally {
      await pooler.close()
    }
  })

  test('a URL behind a pooler in statement mode (PgBouncer pool_mode=statement, which refuses every transaction) is a problem naming the mode', async () => {
    const pooler = await startTransactionPooler(db.url, 2, { statementMode: true })
    try {
      const r = await checkConfig(
        discard({ DATABASE_URL: pooler.url, LISTEN_DATABASE_URL: db.url }),
        { connect: true },
      )
      expect(r.ok).toBe(false)
      expect(r.problems).toEqual([
        expect.stringMatching(
          /^database "default" \(DATABASE_URL\): .*statement pooling mode.*pool_mode = transaction/,
        ),
      ])
    } finally {
      await pooler.close()
    }
  })

  test('each of several databases is checked by name', async () => {
    const port = await closedPort()
    const r = await checkConfig(
      discard({
        MAILER_DATABASES: JSON.stringify([
          { name: 'shop', url: db.url },
          { name: 'crm', url: `postgres://app:${dbPassword}@127.0.0.1:${port}/crm` },
        ]),
      }),
      { connect: true },
    )
    expect(r.ok).toBe(false)
    expect(r.checks.join('\n')).toContain('database "shop"')
    expect(r.problems.join('\n')).toContain('database "crm" (MAILER_DATABASES crm.url)')
    expectNoSecrets(r, dbPassword)
  })

  describe('Graph', () => {
    const graphEnv = (fake: Awaited<ReturnType<typeof startFakeGraph>>, c: TestCertificate) =>
      discard({
        DATABASE_URL: db.url,
        ...graphEnvFor(fake),
        MAIL_FROM: 'notifications@example.com',
        GRAPH_CERTIFICATE: c.certPem,
        GRAPH_PRIVATE_KEY: c.keyPem,
      })

    test('a registered certificate gets a token', async () => {
      const fake = await startFakeGraph({ certificates: [cert.certPem] })
      try {
        const r = await checkConfig(graphEnv(fake, cert), { connect: true })
        expect(r).toMatchObject({ ok: true, problems: [] })
        expect(r.checks.join('\n')).toContain('Graph token: issued')
        expect(fake.tokenRequests.filter((t) => t.ok)).toHaveLength(1)
        expectNoSecrets(r, cert.keyPem.split('\n')[1]!)
      } finally {
        await fake.stop()
      }
    })

    test('a MAIL_FROM Graph has no mailbox for is a problem, found without sending a mail', async () => {
      const cases: [Partial<Parameters<typeof startFakeGraph>[0]>, string][] = [
        [{ mailboxes: ['someone-else@example.com'] }, 'ErrorInvalidUser'],
        [{ disabledMailboxes: ['notifications@example.com'] }, 'MailboxNotEnabledForRESTAPI'],
      ]
      for (const [opts, code] of cases) {
        const fake = await startFakeGraph({ certificates: [cert.certPem], ...opts })
        try {
          const r = await checkConfig(graphEnv(fake, cert), { connect: true })
          expect([code, r.ok, r.problems]).toEqual([
            code,
            false,
            [
              expect.stringMatching(
                new RegExp(`^MAIL_FROM: Graph answers 404 ${code} for its mailbox`),
              ),
            ],
          ])
          // Graph's message names the address; the problem does not.
          expect(r.problems[0]).not.toContain('notifications@example.com')
          // One lookup of the mailbox, answered 404; no sendMail.
          expect(fake.requests.map((q) => [q.kind, q.status, q.fault])).toEqual([
            ['lookup', 404, code],
          ])
        } finally {
          await fake.stop()
        }
      }
    })

    test('a MAIL_FROM mailbox the app may read is a check; one it may not read is left to the first send, said so', async () => {
      const readable = await startFakeGraph({
        certificates: [cert.certPem],
        mailboxes: ['notifications@example.com'],
      })
      try {
        const r = await checkConfig(graphEnv(readable, cert), { connect: true })
        expect(r).toMatchObject({ ok: true, problems: [] })
        expect(r.checks).toContainEqual(expect.stringMatching(/^MAIL_FROM: Graph has its mailbox/))
        // Asked as a lookup asks (its $expand of the OutboxDatabaseId and OutboxDatabase
        // properties, its $select, included): a grant that lets the check read the mailbox but not
        // a lookup would pass it and fail every lookup. The lookup here is wired as serve wires it.
        const lookup = createTransport(
          loadConfig({ ...graphEnv(readable, cert), GRAPH_MAILBOX_LOOKUP: 'true' }),
          silentLogger,
        ).lookupFor('default', async () => randomUUID())!
        expect(
          await lookup(outboundMail('notifications@example.com'), new AbortController().signal),
        ).toBe('not_found')
        const asked = readable.requests.map((q) => [q.kind, q.query.$expand, q.query.$select])
        expect(asked[0]).toEqual([
          'lookup',
          expect.stringMatching(
            /^singleValueExtendedProperties\(\$filter=id eq '.* Name OutboxDatabaseId' or id eq '.* Name OutboxDatabase'\)$/,
          ),
          'id,subject,toRecipients',
        ])
        // Sent Items, then the whole mailbox: each asked as the check asked.
        expect(asked).toEqual([asked[0]!, asked[0]!, asked[0]!])
      } finally {
        await readable.stop()
      }
      const sendOnly = await startFakeGraph({ certificates: [cert.certPem], mailRead: false })
      try {
        const r = await checkConfig(graphEnv(sendOnly, cert), { connect: true })
        expect(r).toMatchObject({ ok: true, problems: [] })
        expect(r.checks).toContainEqual(
          expect.stringMatching(/^MAIL_FROM: not checked: Graph lets this app send only/),
        )
        // With the lookup on, the same 403 is a warning: interrupted sends cannot be looked up.
        const lookup = await checkConfig(
          { ...graphEnv(sendOnly, cert), GRAPH_MAILBOX_LOOKUP: 'true' },
          { connect: true },
        )
        expect(lookup.checks).toContainEqual(
          expect.stringMatching(/^warning: GRAPH_MAILBOX_LOOKUP=true but Graph answers 403/),
        )
        expect(sendOnly.requests.filter((q) => q.kind === 'sendMail')).toEqual([])
      } finally {
        await sendOnly.stop()
      }
    })

    test('an unregistered certificate is named with Entra’s code and what to do', async () => {
      const fake = await startFakeGraph({ certificates: [cert.certPem] })
      const stranger = await generateTestCertificate()
      try {
        const r = await checkConfig(graphEnv(fake, stranger), { connect: true })
        expect(r.ok).toBe(false)
        expect(r.problems.join('\n')).toMatch(
          /Graph token: AADSTS700027: .*upload GRAPH_CERTIFICATE/,
        )
        // Some tenants refuse x5t#S256 for a registered certificate (graph.md §1.2): the other form.
        expect(r.problems.join('\n')).toContain('GRAPH_ASSERTION_ALGORITHM=RS256')
        expectNoSecrets(r, stranger.keyPem.split('\n')[1]!)
      } finally {
        await fake.stop()
      }
    })

    test('a machine clock Entra does not agree with is named as such (AADSTS700024), not as the app registration', async () => {
      // Entra's time 30 minutes ahead of this machine's: the assertion it signs expired before
      // Entra reads it, whatever the certificate or the app registration.
      const fake = await startFakeGraph({
        certificates: [cert.certPem],
        now: () => Date.now() + 30 * 60_000,
      })
      try {
        const r = await checkConfig(graphEnv(fake, cert), { connect: true })
        expect(r.ok).toBe(false)
        expect(r.problems.join('\n')).toMatch(/Graph token: AADSTS700024: .*this machine's clock/)
      } finally {
        await fake.stop()
      }
    })

    test('a wrong client secret is named, and the secret is not printed', async () => {
      const fake = await startFakeGraph({ clientSecret: randomBytes(16).toString('hex') })
      try {
        const env = {
          ...graphEnv(fake, cert),
          GRAPH_CERTIFICATE: undefined,
          GRAPH_PRIVATE_KEY: undefined,
          GRAPH_CLIENT_SECRET: clientSecret,
        }
        const r = await checkConfig(env, { connect: true })
        expect(r.ok).toBe(false)
        expect(r.problems.join('\n')).toContain('Graph token:')
        expectNoSecrets(r, clientSecret)
      } finally {
        await fake.stop()
      }
    })
  })
})
