// The compiled binary's commands as a user runs them: serve and migrate, their exit codes, signals, flags and the variables they name.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { generateKeyPairSync } from 'node:crypto'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { type AddressInfo, createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { testCluster } from '../preload.ts'
import { compiledBinary, runBinary } from '../support/binary.ts'
import { closedPort } from '../support/closed-port.ts'
import { pollUntil } from '../support/events.ts'
import { growingOutput } from '../support/growing-output.ts'
import { listeningPort } from '../support/listening-port.ts'
import { adminQuery } from '../support/postgres.ts'
import { generateTestCertificate } from '../support/test-certificate.ts'

let bin: string
let url: string
let mailDir: string
const dbName = `outbox_bin_${process.pid}`
// Generated per run: secrets never enter the repository.
const jwtSecret = crypto.randomUUID() + crypto.randomUUID()

// Builds and drives the real binary: slower than a unit test, still bounded.
setDefaultTimeout(90_000)

beforeAll(async () => {
  bin = await compiledBinary()
  const cluster = await testCluster()
  await adminQuery(cluster.admin, `create database ${dbName}`)
  url = cluster.url(dbName)
  mailDir = await mkdtemp(join(tmpdir(), 'outbox-mail-'))
})
afterAll(async () => {
  const cluster = await testCluster()
  await adminQuery(cluster.admin, `drop database if exists ${dbName} with (force)`)
  await rm(mailDir, { recursive: true, force: true })
})

const env = (extra: Record<string, string> = {}) => ({
  PATH: process.env.PATH ?? '',
  DATABASE_URL: url,
  MAIL_TRANSPORT: 'file',
  MAIL_FILE_DIR: mailDir,
  MAIL_FROM: 'outbox@example.com',
  HOST: '127.0.0.1',
  LOG_LEVEL: 'warn',
  API_JWT_SECRET: jwtSecret,
  ...extra,
})

const run = (args: string[], extra: Record<string, string> = {}) => runBinary(bin, args, env(extra))

test('serve refuses an unmigrated database and says what to run (exit 3)', async () => {
  const r = await run(['serve'], { PORT: '0' })
  expect(r.code).toBe(3)
  expect(r.stderr).toContain('outbox-mailer migrate')
})

test('serve --role api starts without the Graph settings it never uses (reaches the schema check)', async () => {
  // No GRAPH_* and no MAIL_FROM: a role api that asked for them would exit 2 naming them.
  const p = Bun.spawn([bin, 'serve', '--role', 'api'], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: url,
      API_JWT_SECRET: jwtSecret,
      MAIL_TRANSPORT: 'graph',
      HOST: '127.0.0.1',
      PORT: '0',
      LOG_LEVEL: 'warn',
    },
    stdout: 'ignore',
    stderr: 'pipe',
  })
  // Bounded: a serve that started would never exit by itself.
  const bound = setTimeout(() => p.kill(), 15_000)
  const [code, stderr] = await Promise.all([p.exited, new Response(p.stderr).text()])
  clearTimeout(bound)
  // The database is not migrated yet: the start got past the configuration to the schema verdict.
  expect(stderr).not.toContain('GRAPH_')
  expect(code).toBe(3)
})

test('serve names a missing API auth among the other configuration problems, not after them', async () => {
  // Nothing set: every problem must come in one refusal, so one round of fixes is enough.
  for (const role of ['all', 'api'] as const) {
    const r = await runBinary(bin, ['serve', '--role', role], { PATH: process.env.PATH ?? '' })
    expect(r.code).toBe(2)
    expect(r.stderr).toContain('DATABASE_URL (or MAILER_DATABASES) is required')
    expect(r.stderr).toContain('API_JWT_SECRET or API_JWKS_URL')
  }
  // A worker serves no API: it is not asked for auth.
  const worker = await runBinary(bin, ['serve', '--role', 'worker'], {
    PATH: process.env.PATH ?? '',
  })
  expect(worker.code).toBe(2)
  expect(worker.stderr).toContain('DATABASE_URL (or MAILER_DATABASES) is required')
  expect(worker.stderr).not.toContain('API_JWT_SECRET')
})

test('migrate needs only the database, not the Graph settings it never uses', async () => {
  // A database of its own: the drain test below expects `url` unmigrated.
  const cluster = await testCluster()
  const name = `${dbName}_migrate_only`
  await adminQuery(cluster.admin, `create database ${name}`)
  try {
    // What a CI job or a laptop has for `migrate`: the URL, and the default transport (graph).
    const { code, stdout, stderr } = await runBinary(bin, ['migrate'], {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: cluster.url(name),
      LOG_LEVEL: 'warn',
    })
    expect(stderr).not.toContain('GRAPH_')
    expect(stderr).not.toContain('MAIL_FROM')
    expect(code).toBe(0)
    expect(stdout).toContain('applied 1')
  } finally {
    await adminQuery(cluster.admin, `drop database if exists ${name} with (force)`)
  }
})

test('migrate --help and migrate --dry-run leave a fresh database unmigrated', async () => {
  const help = await run(['migrate', '--help'])
  expect(help.code).toBe(0)
  expect(help.stdout).toContain('usage: outbox-mailer migrate')
  const dry = await run(['migrate', '--dry-run'])
  expect(dry.code).toBe(2)
  expect(dry.stderr).toContain('unknown option "--dry-run"')
  const schema = await adminQuery(url, "select 1 from pg_namespace where nspname = 'mailer'")
  expect(schema.rows).toEqual([])
})

test('serve --help prints its usage and exits without serving', async () => {
  const p = Bun.spawn([bin, 'serve', '--help'], {
    env: env({ PORT: '0' }),
    stdout: 'pipe',
    stderr: 'pipe',
  })
  // Bounded: a serve that started would never exit by itself.
  const bound = setTimeout(() => p.kill(), 15_000)
  try {
    expect(await p.exited).toBe(0)
    expect(await new Response(p.stdout).text()).toContain('usage: outbox-mailer serve')
  } finally {
    clearTimeout(bound)
  }
})

test('an unknown command or option is named before the environment is read', async () => {
  for (const args of [['bogus'], ['--versio'], ['serve', '--role'], ['serve', 'extra-arg']]) {
    // No DATABASE_URL: a configuration read first would report that instead.
    const p = Bun.spawn([bin, ...args], { env: { PATH: process.env.PATH ?? '' }, stderr: 'pipe' })
    const [code, stderr] = await Promise.all([p.exited, new Response(p.stderr).text()])
    expect(code).toBe(2)
    expect(stderr).toMatch(/unknown command|unknown option|needs a value|unexpected argument/)
    expect(stderr).not.toContain('DATABASE_URL')
  }
})

test('the compiled binary migrates, drains with the file transport, and stops cleanly on SIGTERM', async () => {
  const first = await run(['migrate'])
  expect(first.code).toBe(0)
  expect(first.stdout).toContain('applied 1')
  expect((await run(['migrate'])).stdout).toContain('up to date')

  await adminQuery(
    url,
    `select mailer.enqueue_email(jsonb_build_object('to', 'r' || g || '@example.com', 'subject', 'n' || g, 'text', 'body ' || g))
       from generate_series(1, 40) g`,
  )
  // PORT=0: the system's choice of port, read back from its listening line (at info).
  const serve = Bun.spawn([bin, 'serve'], {
    env: env({ PORT: '0', LOG_LEVEL: 'info' }),
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const stdout = growingOutput(serve.stdout)
  try {
    const port = await listeningPort(stdout, serve.exited)
    const ready = await pollUntil<{ databases: unknown[] }>(async () => {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null)
      return res?.status === 200 ? ((await res.json()) as { databases: unknown[] }) : undefined
    })
    expect(ready.databases[0]).toMatchObject({
      name: 'default',
      listener: 'listening',
      worker: 'running',
    })
    // Rows committed while it runs arrive through the notification.
    await adminQuery(
      url,
      `select mailer.enqueue_email(jsonb_build_object('to', 'late' || g || '@example.com', 'subject', 's', 'html', '<p>x</p>'))
         from generate_series(1, 10) g`,
    )
    await pollUntil(async () => ((await readdir(mailDir)).length === 50 ? true : undefined))
    // A file is written before its row's settlement commits: wait for the settlements too.
    const statuses = async () =>
      (
        await adminQuery(
          url,
          `select status, count(*)::int as n from mailer.email_outbox group by status`,
        )
      ).rows
    await pollUntil(async () =>
      (await statuses()).some((r) => r.status === 'pending' || r.status === 'sending')
        ? undefined
        : true,
    )
    expect(await statuses()).toEqual([{ status: 'sent', n: 50 }])
  } finally {
    serve.kill('SIGTERM')
  }
  expect(await serve.exited).toBe(0)
  const { rows } = await adminQuery(url, 'select count(*)::int as n from mailer.workers')
  expect(rows[0].n).toBe(0)
})

test('SIGINT (Ctrl-C) and SIGHUP (its terminal or SSH session closed) stop serve as SIGTERM does', async () => {
  expect((await run(['migrate'])).code).toBe(0)
  for (const signal of ['SIGINT', 'SIGHUP'] as const) {
    const serve = Bun.spawn([bin, 'serve'], {
      env: env({ PORT: '0', LOG_LEVEL: 'info' }),
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const stdout = growingOutput(serve.stdout)
    try {
      const port = await listeningPort(stdout, serve.exited)
      await pollUntil(async () => {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null)
        return res?.status === 200 ? true : undefined
      }, 20_000)
      serve.kill(signal)
      // A stop within the grace exits 0 after deregistering; a signal's default action ends the
      // process at once (SIGHUP: 129), leaving its leases, slots and registry entry behind.
      expect({ signal, code: await serve.exited }).toEqual({ signal, code: 0 })
    } finally {
      serve.kill('SIGKILL')
    }
    await stdout.ended
    expect(stdout.text()).toContain(`"msg":"stopping","reason":"${signal}"`)
    const { rows } = await adminQuery(url, 'select count(*)::int as n from mailer.workers')
    expect(rows[0].n).toBe(0)
  }
})

test('a variable it does not read (a typo) is named by every command, with the one meant, never its value', async () => {
  const typo = { GRAPH_MAILBOX_LOOKUPS: 'true', MAIL_FORM: 'value-never-printed' }
  // A refused configuration names it beside the problem it explains.
  const refused = await run(['serve'], {
    ...typo,
    MAIL_TRANSPORT: 'graph',
    MAIL_FROM: '',
    PORT: '0',
  })
  expect(refused.code).toBe(2)
  expect(refused.stderr).toContain('MAIL_FROM is required')
  expect(refused.stderr).toContain(
    'MAIL_FORM is set, but outbox-mailer reads no variable of that name: it is ignored (did you mean MAIL_FROM?)',
  )
  // migrate (as serve and send-test) logs one warn line per variable.
  const migrated = await run(['migrate'], { ...typo, LOG_LEVEL: 'info' })
  expect(migrated.code).toBe(0)
  const lines = migrated.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
  expect(lines.filter((l) => l.msg === 'unknown variable ignored')).toEqual([
    expect.objectContaining({
      level: 'warn',
      variable: 'GRAPH_MAILBOX_LOOKUPS',
      didYouMean: 'GRAPH_MAILBOX_LOOKUP',
    }),
    expect.objectContaining({ level: 'warn', variable: 'MAIL_FORM', didYouMean: 'MAIL_FROM' }),
  ])
  // status --json keeps its one object: the variables are among its warnings.
  const status = await run(['status', '--json'], typo)
  expect(JSON.parse(status.stdout).warnings).toEqual([
    expect.stringContaining('GRAPH_MAILBOX_LOOKUPS is set, but'),
    expect.stringContaining('MAIL_FORM is set, but'),
  ])
  for (const r of [refused, migrated, status]) {
    expect(r.stdout + r.stderr).not.toContain('value-never-printed')
  }
})

test('check-config against hostile variables: exit 2, one problem line naming each, no stack, no secret; blanks around valid values: exit 0', async () => {
  // The in-process property (unit/hostile-config.test.ts) searches; this is what the binary prints.
  const marker = `mk${crypto.randomUUID().replaceAll('-', '')}`
  // Shorter than an HS256 key may be: refused, never echoed.
  const previous = `pv${marker.slice(2, 16)}`
  const hostile = await run(['check-config'], {
    DATABASE_URL: `postgres://u:${marker}@db.example/app?sslmode=verify-full&sslmode=disable`,
    // A % that starts no escape: the driver sent it as written.
    LISTEN_DATABASE_URL: `postgres://u:${marker}%zz@db.example/app`,
    MAIL_FROM: 'outbox\u200b@example.com',
    HOST: '127.1',
    PORT: '1e999',
    API_JWT_SECRET_PREVIOUS: previous,
    LEASE_SECONDS: '90s',
  })
  const lines = hostile.stderr.trimEnd().split('\n')
  expect([hostile.code, lines.map((l) => /^problem: ([A-Z_]+)/.exec(l)?.[1])]).toEqual([
    2,
    [
      'DATABASE_URL',
      'LISTEN_DATABASE_URL',
      'MAIL_FROM',
      'HOST',
      'PORT',
      'API_JWT_SECRET_PREVIOUS',
      'LEASE_SECONDS',
    ],
  ])
  expect(hostile.stdout.trimEnd().split('\n').at(-1)).toBe('7 problem(s)')
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const key = ec.privateKey.export({ type: 'sec1', format: 'pem' }).toString()
  const cert = await generateTestCertificate()
  const wrongKey = await run(['check-config'], {
    MAIL_TRANSPORT: 'graph',
    GRAPH_TENANT_ID: crypto.randomUUID(),
    GRAPH_CLIENT_ID: crypto.randomUUID(),
    GRAPH_CERTIFICATE: cert.certPem,
    GRAPH_PRIVATE_KEY: key,
  })
  expect([wrongKey.code, wrongKey.stderr]).toEqual([
    2,
    'problem: GRAPH_PRIVATE_KEY: must be an RSA key (PS256/RS256), got ec (BEGIN EC PRIVATE KEY)\n',
  ])
  for (const r of [hostile, wrongKey]) {
    const printed = r.stdout + r.stderr
    expect([
      printed.includes(marker),
      printed.includes(previous),
      printed.includes(key.split('\n')[1]!),
      /\n\s+at /.test(printed),
    ]).toEqual([false, false, false, false])
  }
  const padded = await run(['check-config'], {
    MAIL_FROM: '  outbox@example.com\t',
    PORT: ' 8080 ',
    LOG_LEVEL: '\twarn\n',
  })
  expect([padded.code, padded.stderr, padded.stdout.trimEnd().split('\n').at(-1)]).toEqual([
    0,
    '',
    'configuration OK',
  ])
})

test('a SIGTERM while serve is still starting stops it cleanly (exit 0), not like a SIGKILL', async () => {
  // A database that takes connections and never answers: the start waits in its schema check,
  // after its LISTEN session began connecting (its drainers would be claiming next).
  const sockets: Socket[] = []
  const silent = createServer((s) => {
    sockets.push(s)
    s.resume()
  })
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
  const silentUrl = new URL(url)
  silentUrl.hostname = '127.0.0.1'
  silentUrl.port = String((silent.address() as AddressInfo).port)
  const p = Bun.spawn([bin, 'serve'], {
    env: env({ DATABASE_URL: silentUrl.href, PORT: '0' }),
    stdout: 'pipe',
    stderr: 'pipe',
  })
  try {
    await pollUntil(async () => (sockets.length > 0 ? true : undefined), 20_000)
    p.kill('SIGTERM')
    // Then the database goes away: the start ends at once (unreachable, it keeps trying) rather
    // than at its connect timeout, and so does the stop.
    for (const s of sockets) s.destroy()
    silent.close()
    expect(await p.exited).toBe(0)
  } finally {
    p.kill('SIGKILL')
    for (const s of sockets) s.destroy()
    silent.close()
  }
})

test('migrate names newer migrations that keep it working, and refuses (exit 3) one that does not', async () => {
  await run(['migrate'])
  await adminQuery(
    url,
    `insert into mailer.schema_migrations (version, name, checksum, older_binaries_compatible)
     values (9000, '9000_new_index', 'x', true)`,
  )
  try {
    const kept = await run(['migrate'])
    expect(kept.code).toBe(0)
    expect(kept.stdout).toContain(
      'it also has 9000 from a newer release, which this one works with',
    )
    await adminQuery(
      url,
      `insert into mailer.schema_migrations (version, name, checksum) values (9001, '9001_new_column', 'y')`,
    )
    const refused = await run(['migrate'])
    expect(refused.code).toBe(3)
    expect(refused.stderr).toContain('migration 9001 (9001_new_column)')
  } finally {
    await adminQuery(url, 'delete from mailer.schema_migrations where version >= 9000')
  }
})

test('with several databases, a migrate error names the database it came from', async () => {
  const closed = `postgres://nobody@127.0.0.1:${await closedPort()}/nothing`
  const r = await run(['migrate'], {
    DATABASE_URL: '',
    MAILER_DATABASES: JSON.stringify([
      { name: 'main', url },
      { name: 'closed', url: closed },
    ]),
  })
  expect(r.code).toBe(1)
  expect(r.stdout).toContain('main: ')
  expect(r.stderr).toMatch(/^closed \(MAILER_DATABASES closed\.url\): .*ECONNREFUSED/m)
})

test('a migrate refused at login names the variable whose URL it used (LISTEN_DATABASE_URL), the cause and what to check', async () => {
  const password = `pw-${crypto.randomUUID()}`
  const wrong = new URL(url)
  wrong.password = password
  // The deploy's setup: DATABASE_URL pooled and right, the direct URL that migrate uses wrong.
  const r = await run(['migrate'], { LISTEN_DATABASE_URL: wrong.href })
  expect(r.code).toBe(1)
  expect(r.stderr).toStartWith('default (LISTEN_DATABASE_URL): password authentication failed')
  expect(r.stderr).toContain('SQLSTATE 28P01, the password was refused')
  expect(r.stderr).toContain("check the user and password in the database's URL")
  expect(r.stderr).not.toContain(password)
  const several = await run(['migrate'], {
    DATABASE_URL: '',
    MAILER_DATABASES: JSON.stringify([{ name: 'shop', url, listenUrl: wrong.href }]),
  })
  expect(several.stderr).toStartWith('shop (MAILER_DATABASES shop.listenUrl): ')
})

test('no command prints the help and exits 2: a script that forgot its command does not pass', async () => {
  const p = Bun.spawn([bin], { env: { PATH: process.env.PATH ?? '' }, stdout: 'pipe' })
  const [code, stdout] = await Promise.all([p.exited, new Response(p.stdout).text()])
  expect([code, stdout.includes('Usage:')]).toEqual([2, true])
})

test('--version prints the release (package.json) alone and --help names DESIGN.md’s commands, exit 0 each', async () => {
  const pkg = (await Bun.file(join(import.meta.dir, '../../package.json')).json()) as {
    version: string
  }
  const bare = { PATH: process.env.PATH ?? '' }
  const version = await runBinary(bin, ['--version'], bare)
  expect([version.code, version.stdout, version.stderr]).toEqual([0, `${pkg.version}\n`, ''])
  const help = await runBinary(bin, ['--help'], bare)
  expect([help.code, help.stderr]).toEqual([0, ''])
  // The contract's command lines, as a user copies them from DESIGN.md.
  for (const line of [
    'outbox-mailer serve [--role all|worker|api]',
    'outbox-mailer migrate',
    'outbox-mailer --version | --help',
    'outbox-mailer status',
    'outbox-mailer send-test',
    'outbox-mailer check-config',
  ])
    expect([line, help.stdout.includes(line)]).toEqual([line, true])
})

test('send-test needs no database: one message through the file transport, exit 0', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'outbox-send-test-'))
  try {
    const r = await run(['send-test', '--to', 'ada@example.com'], {
      DATABASE_URL: '',
      MAIL_FILE_DIR: dir,
    })
    const written = (await readdir(dir)).filter((f) => f.endsWith('.eml'))
    expect(written).toHaveLength(1)
    expect([r.code, r.stdout.trim(), r.stderr]).toEqual([
      0,
      `sent: file accepted the message (written to ${join(dir, written[0]!)})`,
      '',
    ])
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})

test('serve refused by a configuration its start reads (a Graph certificate that is no PEM) exits 2, as a bad variable does', async () => {
  expect((await run(['migrate'])).code).toBe(0)
  const p = Bun.spawn([bin, 'serve'], {
    env: env({
      PORT: '0',
      MAIL_TRANSPORT: 'graph',
      GRAPH_TENANT_ID: '00000000-0000-0000-0000-000000000001',
      GRAPH_CLIENT_ID: '00000000-0000-0000-0000-000000000002',
      GRAPH_CERTIFICATE: 'not a certificate',
      GRAPH_PRIVATE_KEY: 'not a key',
    }),
    stdout: 'pipe',
    stderr: 'pipe',
  })
  // Bounded: a serve that started would never exit by itself.
  const bound = setTimeout(() => p.kill(), 30_000)
  try {
    const [code, stderr] = await Promise.all([p.exited, new Response(p.stderr).text()])
    expect([code, /GRAPH_CERTIFICATE/.test(stderr)]).toEqual([2, true])
  } finally {
    clearTimeout(bound)
  }
})

test('serve with its PORT or METRICS_PORT held by another program says so in one line (stderr) and one log line, exit 1, no stack trace', async () => {
  expect((await run(['migrate'])).code).toBe(0)
  // A server of the test's own holds the port: nothing can take it between the look and the bind.
  const held = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('held') })
  try {
    for (const [extra, variables] of [
      [{ PORT: String(held.port) }, 'HOST, PORT'],
      [{ PORT: '0', METRICS_PORT: String(held.port) }, 'HOST, METRICS_PORT'],
    ] as const) {
      const r = await run(['serve'], { ...extra, LOG_LEVEL: 'info' })
      const line = `cannot listen on 127.0.0.1:${held.port} (${variables}): another program holds that port (EADDRINUSE)`
      const logged = r.stdout
        .split('\n')
        .filter((l) => l.includes('"msg":"cannot listen'))
        .map((l) => JSON.parse(l))
      // The exit line carries the system's code too: `internal` would read as a bug to an alert.
      const exiting = r.stdout
        .split('\n')
        .filter((l) => l.includes('"msg":"exiting"'))
        .map((l) => JSON.parse(l))
      expect({ code: r.code, stderr: r.stderr, logged, exiting }).toEqual({
        code: 1,
        stderr: `${line}\n`,
        logged: [
          expect.objectContaining({
            level: 'error',
            msg: line,
            code: 'EADDRINUSE',
            host: '127.0.0.1',
            port: held.port,
          }),
        ],
        exiting: [expect.objectContaining({ exitCode: 1, code: 'EADDRINUSE', reason: line })],
      })
    }
  } finally {
    await held.stop(true)
  }
})
