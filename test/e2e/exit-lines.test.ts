// Why the process ended, as a JSON log line a log pipeline (fly logs) reads: serve's and migrate's failures, and an error nothing caught, which stops serve as a signal does.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { join, resolve } from 'node:path'
import { testCluster } from '../preload.ts'
import { compiledBinary, runBinary } from '../support/binary.ts'
import { closedPort } from '../support/closed-port.ts'
import { pollUntil } from '../support/events.ts'
import { growingOutput } from '../support/growing-output.ts'
import { listeningPort } from '../support/listening-port.ts'
import { adminQuery } from '../support/postgres.ts'
import { cloneTemplateDb, type TemplateDb } from '../support/template-db.ts'

// Builds and drives the real binary (and main.ts under bun): slower than a unit test, still bounded.
setDefaultTimeout(90_000)

let bin: string
let migrated: TemplateDb
const emptyDb = `outbox_exitl_${process.pid}`
let emptyUrl: string
// Generated per run: secrets never enter the repository.
const jwtSecret = crypto.randomUUID() + crypto.randomUUID()

beforeAll(async () => {
  bin = await compiledBinary()
  const cluster = await testCluster()
  await adminQuery(cluster.admin, `create database ${emptyDb}`)
  emptyUrl = cluster.url(emptyDb)
  migrated = await cloneTemplateDb('outbox_exitl')
})
afterAll(async () => {
  const cluster = await testCluster()
  await adminQuery(cluster.admin, `drop database if exists ${emptyDb} with (force)`)
  await migrated?.drop()
})

const base = (extra: Record<string, string>) => ({
  PATH: process.env.PATH ?? '',
  MAIL_TRANSPORT: 'discard',
  MAIL_FROM: 'outbox@example.com',
  HOST: '127.0.0.1',
  PORT: '0',
  ...extra,
})

/** stdout's JSON lines (a plain line is no log line: left out). */
function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

describe('an exit reason is a JSON line on stdout too', () => {
  test('serve on an unmigrated database: exit 3, and a line with the code and what to run', async () => {
    const r = await runBinary(
      bin,
      ['serve'],
      base({ DATABASE_URL: emptyUrl, API_JWT_SECRET: jwtSecret }),
    )
    expect(r.code).toBe(3)
    expect(r.stderr).toContain('outbox-mailer migrate')
    expect(jsonLines(r.stdout).filter((l) => l.msg === 'exiting')).toEqual([
      expect.objectContaining({
        level: 'error',
        exitCode: 3,
        code: 'schema_missing',
        reason: expect.stringContaining('outbox-mailer migrate'),
      }),
    ])
  })

  test('serve with its configuration refused: exit 2, and the line names the variable', async () => {
    const r = await runBinary(bin, ['serve'], base({ DATABASE_URL: migrated.url }))
    expect(r.code).toBe(2)
    expect(jsonLines(r.stdout).filter((l) => l.msg === 'exiting')).toEqual([
      expect.objectContaining({
        level: 'error',
        exitCode: 2,
        code: 'config_invalid',
        reason: expect.stringContaining('API_JWT_SECRET'),
      }),
    ])
  })

  test('migrate that cannot reach its database: exit 1, and a line naming the database and why', async () => {
    const down = `postgres://postgres@127.0.0.1:${await closedPort()}/nowhere`
    const r = await runBinary(bin, ['migrate'], base({ DATABASE_URL: down }))
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('ECONNREFUSED')
    expect(jsonLines(r.stdout).filter((l) => l.level === 'error')).toEqual([
      expect.objectContaining({
        msg: 'migration failed',
        db: 'default',
        exitCode: 1,
        reason: expect.stringContaining('ECONNREFUSED'),
      }),
    ])
  })
})

describe('an error nothing caught, in a running serve', () => {
  const root = resolve(import.meta.dir, '../..')
  for (const fault of ['exception', 'rejection'] as const) {
    test(`an uncaught ${fault}: logged as a JSON line, serve stops as on a signal (its worker deregistered), exit 1`, async () => {
      const p = Bun.spawn(
        [
          process.execPath,
          '--preload',
          join(root, 'test/support/fault-on-signal.ts'),
          join(root, 'src/main.ts'),
          'serve',
          '--role',
          'worker',
        ],
        {
          cwd: root,
          env: base({ DATABASE_URL: migrated.url, LOG_LEVEL: 'info', FAULT: fault }),
          stdout: 'pipe',
          stderr: 'pipe',
        },
      )
      const stdout = growingOutput(p.stdout)
      let exitCode: number | null = null
      void p.exited.then((c) => {
        exitCode = c
      })
      let code: number | 'still running'
      try {
        await listeningPort(stdout, p.exited)
        const workers = async () =>
          Number(
            (await adminQuery(migrated.url, 'select count(*)::int as n from mailer.workers'))
              .rows[0]?.n,
          )
        await pollUntil(async () => ((await workers()) === 1 ? true : undefined), 20_000)
        p.kill('SIGUSR2')
        // Bounded: a process that goes on after such an error (in a state nobody knows) fails here.
        code = await pollUntil(async () => exitCode ?? undefined, 60_000).catch(
          () => 'still running' as const,
        )
      } finally {
        p.kill('SIGKILL')
      }
      await stdout.ended
      const lines = jsonLines(stdout.text())
      expect({
        code,
        fault: lines.filter((l) => l.level === 'error').map((l) => [l.msg, l.origin]),
        stop: lines.filter((l) => l.msg === 'stopping' || l.msg === 'stopped').map((l) => l.msg),
      }).toEqual({
        code: 1,
        fault: [
          [
            'uncaught error: stopping',
            fault === 'exception' ? 'uncaughtException' : 'unhandledRejection',
          ],
        ],
        stop: ['stopping', 'stopped'],
      })
      const left = await adminQuery(migrated.url, 'select count(*)::int as n from mailer.workers')
      expect(left.rows[0]?.n).toBe(0)
    })
  }
})
