// `bun run dev` drains its embedded database only, whatever database settings the shell holds.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { loadConfig } from '../../src/config.ts'
import {
  devAuthNote,
  devBanner,
  devEnvironment,
  devPostgresPort,
  devServeFailure,
  embeddedExitLine,
  embeddedStartFailure,
} from '../../src/dev-environment.ts'
import { AppError } from '../../src/errors.ts'
import { listen, type PortVariable } from '../../src/http-listen.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const places = {
  url: 'postgres://postgres:postgres@127.0.0.1:54329/outbox_dev',
  mailDir: '/tmp/m',
  port: 8080,
}

test('the shell’s LISTEN_DATABASE_URL is not listened on: dev listens on its embedded database', () => {
  const config = loadConfig(
    devEnvironment({ LISTEN_DATABASE_URL: 'postgres://app:pw@db.example.com:5432/prod' }, places),
    { dev: true },
  )
  expect(config.databases.map((d) => [d.url, d.listenUrl])).toEqual([[places.url, places.url]])
})

test('the shell’s MAILER_DATABASES neither fails dev nor is drained by it', () => {
  const several = JSON.stringify([
    { name: 'shop', url: 'postgres://app:pw@db.example.com:5432/shop' },
  ])
  const config = loadConfig(devEnvironment({ MAILER_DATABASES: several }, places), { dev: true })
  expect(config.databases.map((d) => d.url)).toEqual([places.url])
  expect(config.transport).toBe('file')
})

test('the banner says the API needs tokens when the shell holds API_JWT_SECRET, as it then does', () => {
  const open = loadConfig(devEnvironment({}, places), { dev: true })
  expect(devAuthNote(open)).toBe('no API auth')
  const secret = 'x'.repeat(40)
  const closed = loadConfig(devEnvironment({ API_JWT_SECRET: secret }, places), { dev: true })
  expect(devAuthNote(closed)).not.toContain('no API auth')
  expect(devAuthNote(closed)).toContain('API_JWT_SECRET')
})

test('the embedded Postgres listens on 54329 unless DEV_POSTGRES_PORT names another (a second checkout) or 0 (any free one)', () => {
  expect(devPostgresPort({})).toBe(54329)
  expect(devPostgresPort({ DEV_POSTGRES_PORT: ' ' })).toBe(54329)
  expect(devPostgresPort({ DEV_POSTGRES_PORT: '54330' })).toBe(54330)
  // 0: any free port, chosen when Postgres starts (and chosen again if another takes it first).
  expect(devPostgresPort({ DEV_POSTGRES_PORT: '0' })).toBe(0)
  for (const bad of ['65536', 'x', '5432.5', '-1']) {
    expect(() => devPostgresPort({ DEV_POSTGRES_PORT: bad })).toThrow(
      'DEV_POSTGRES_PORT: must be a port number (1-65535), or 0 for any free one',
    )
  }
})

test('a port its Postgres found taken says which and what to do; with DEV_POSTGRES_PORT=0 (chosen again, and again taken) no port to change', () => {
  const taken = 'could not bind IPv4 address "127.0.0.1": Address already in use'
  expect(embeddedStartFailure(taken, 54329)).toBe(
    "the embedded Postgres did not start: port 54329 is taken (another checkout's `bun run dev`?): give this one another, DEV_POSTGRES_PORT=54339 bun run dev.",
  )
  expect(embeddedStartFailure(taken, 0)).toBe(
    'the embedded Postgres did not start: the free ports chosen were each taken by another program before it bound them: start again.',
  )
})

test('a shell MAIL_FROM that names a Graph user id (valid for a deployment) does not stop dev', () => {
  const userId = '0f8fad5b-d9cb-469f-a165-70867728950e'
  const config = loadConfig(devEnvironment({ MAIL_FROM: userId }, places), { dev: true })
  // The file transport writes a From header: it needs an address, so dev keeps its own.
  expect(config.mailFrom).toBe('outbox@example.com')
  const named = loadConfig(devEnvironment({ MAIL_FROM: 'Notifications <n@example.com>' }, places), {
    dev: true,
  })
  expect(named.mailFrom).toBe('Notifications <n@example.com>')
})

test('the banner says where /metrics is (on METRICS_PORT when the shell sets it, else on PORT) and where Postgres logs', () => {
  const banner = (env: Record<string, string>, metricsPort: number | null = null) =>
    devBanner(loadConfig(devEnvironment(env, places), { dev: true }), {
      ...places,
      metricsPort,
      dataDir: '/tmp/d',
      postgresLog: '/tmp/d/postgres.log',
    })
  expect(banner({})).toContain('http://localhost:8080/metrics')
  // Where to look when the database misbehaves: dev keeps Postgres's own log there.
  expect(banner({})).toContain("Postgres's own log: /tmp/d/postgres.log\n")
  const apart = banner({ METRICS_PORT: '9091' })
  expect(apart).toContain('http://localhost:9091/metrics')
  expect(apart).not.toContain('8080/metrics')
  // METRICS_PORT=0: the port the system chose, as the listener bound it, not 0.
  const chosen = banner({ METRICS_PORT: '0' }, 41234)
  expect(chosen).toContain('http://localhost:41234/metrics (METRICS_PORT; not on 8080)')
  expect(chosen).not.toContain(':0/metrics')
})

test('the line for a Postgres that died under dev says how it ended and where its log is', () => {
  expect(embeddedExitLine({ code: 1, signal: null }, '/w/.data/postgres.log')).toBe(
    'the embedded Postgres exited (exit code 1) while dev ran, so dev stops: its log is /w/.data/postgres.log. Start again with `bun run dev`.',
  )
  expect(embeddedExitLine({ code: null, signal: 'SIGKILL' }, null)).toContain(
    '(signal SIGKILL) while dev ran, so dev stops: it kept no log.',
  )
})

test("serve's failure to start under dev: a held port (PORT or METRICS_PORT) is listen's line naming the port's variable alone (dev sets HOST) with the one to change, anything else as it says", async () => {
  // A server of the test's own holds the port; listen's own error is what dev is given.
  const holder = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Response('held') })
  const failure = (portVariable?: PortVariable) => {
    try {
      listen(
        { host: '127.0.0.1', port: holder.port!, metricsPort: null },
        () => new Response(),
        portVariable,
      ).stop(true)
    } catch (e) {
      return devServeFailure(e)
    }
    return 'it listened'
  }
  try {
    // dev sets HOST itself (127.0.0.1): only the port variable is the shell's to change.
    expect(failure()).toBe(
      `cannot listen on 127.0.0.1:${holder.port} (PORT): another program holds that port (EADDRINUSE); stop it, or give dev another: PORT=${holder.port! + 1} bun run dev`,
    )
    // The shell's METRICS_PORT stays in force under dev: the hint names it, not PORT.
    expect(failure('METRICS_PORT')).toBe(
      `cannot listen on 127.0.0.1:${holder.port} (METRICS_PORT): another program holds that port (EADDRINUSE); stop it, or give dev another: METRICS_PORT=${holder.port! + 1} bun run dev`,
    )
  } finally {
    await holder.stop(true)
  }
  const denied = new AppError(
    'internal',
    'cannot listen on 127.0.0.1:80 (HOST, PORT): EACCES: permission denied',
    { host: '127.0.0.1', port: 80 },
    {
      cause: Object.assign(new Error('permission denied'), { code: 'EACCES' }),
    },
  )
  expect(devServeFailure(denied)).toBe(
    'cannot listen on 127.0.0.1:80 (HOST, PORT): EACCES: permission denied',
  )
})
