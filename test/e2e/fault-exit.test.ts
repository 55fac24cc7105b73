// An error nothing caught, where serve's own fault handling did not reach: during a stop a signal began, and in migrate and status: each ends non-zero, saying why.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { join, resolve } from 'node:path'
import pg from 'pg'
import { pollUntil } from '../support/events.ts'
import { type GrowingOutput, growingOutput } from '../support/growing-output.ts'
import { holdHandLock } from '../support/hand-lock.ts'
import { listeningPort } from '../support/listening-port.ts'
import { adminQuery } from '../support/postgres.ts'
import { cloneTemplateDb, type TemplateDb } from '../support/template-db.ts'

// Drives main.ts under bun as a child process: slower than a unit test, still bounded.
setDefaultTimeout(90_000)

let db: TemplateDb
beforeAll(async () => {
  db = await cloneTemplateDb('outbox_fault')
})
afterAll(async () => {
  await db?.drop()
})

const root = resolve(import.meta.dir, '../..')

interface Child {
  p: Bun.Subprocess<'ignore', 'pipe', 'pipe'>
  stdout: GrowingOutput
  stderr: GrowingOutput
  /** The exit code, once it exited. */
  code(): number | null
}

/** main.ts under bun, test/support/fault-on-signal.ts preloaded (FAULT, FAULT_ON in `env`). */
function start(args: string[], env: Record<string, string>): Child {
  const p = Bun.spawn(
    [
      process.execPath,
      '--preload',
      join(root, 'test/support/fault-on-signal.ts'),
      join(root, 'src/main.ts'),
      ...args,
    ],
    {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', DATABASE_URL: db.url, LOG_LEVEL: 'info', ...env },
      stdin: 'ignore',
      stdout: 'pipe',
      stderr: 'pipe',
    },
  )
  let exitCode: number | null = null
  void p.exited.then((c) => {
    exitCode = c
  })
  return {
    p,
    stdout: growingOutput(p.stdout),
    stderr: growingOutput(p.stderr),
    code: () => exitCode,
  }
}

/** stdout's JSON lines (a plain line is no log line: left out). */
function jsonLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

/**
 * Waits (bounded) until a session of `applicationName` on this test's database runs (or last ran) a
 * statement containing `text`: another run on the same server starts the same commands on its own.
 */
async function waitForStatement(applicationName: string, text: string) {
  await pollUntil(async () => {
    const { rows } = await adminQuery(
      db.url,
      `select 1 from pg_stat_activity
        where datname = current_database() and application_name = $1 and position($2 in query) > 0`,
      [applicationName, text],
    )
    return rows.length > 0 ? true : undefined
  }, 30_000)
}

/**
 * Waits (bounded) until a session of `applicationName` on this test's database waits for a lock:
 * its statement's text may name the locked table past the 1 KB pg_stat_activity keeps of it.
 */
async function waitForLockWait(applicationName: string) {
  await pollUntil(async () => {
    const { rows } = await adminQuery(
      db.url,
      `select 1 from pg_stat_activity
        where datname = current_database() and application_name = $1 and wait_event_type = 'Lock'`,
      [applicationName],
    )
    return rows.length > 0 ? true : undefined
  }, 30_000)
}

/** The exit code if the child exits within the bound, else 'still running'. */
const exitedWithin = (c: Child, ms: number) =>
  pollUntil(async () => c.code() ?? undefined, ms).catch(() => 'still running' as const)

test('serve: an error nothing caught while a SIGTERM stop runs: the stop completes, then exit 1, not 0', async () => {
  const c = start(['serve', '--role', 'worker'], {
    MAIL_TRANSPORT: 'discard',
    MAIL_FROM: 'outbox@example.com',
    HOST: '127.0.0.1',
    PORT: '0',
    FAULT_ON: 'SIGTERM',
  })
  let code: number | 'still running'
  try {
    await listeningPort(c.stdout, c.p.exited)
    const workers = async () =>
      Number((await adminQuery(db.url, 'select count(*)::int as n from mailer.workers')).rows[0]?.n)
    await pollUntil(async () => ((await workers()) === 1 ? true : undefined), 20_000)
    c.p.kill('SIGTERM')
    code = await exitedWithin(c, 60_000)
  } finally {
    c.p.kill('SIGKILL')
  }
  await c.stdout.ended
  const lines = jsonLines(c.stdout.text())
  expect({
    code,
    fault: lines.filter((l) => l.level === 'error').map((l) => [l.msg, l.origin]),
    stop: lines.filter((l) => l.msg === 'stopping' || l.msg === 'stopped').map((l) => l.msg),
  }).toEqual({
    code: 1,
    fault: [['uncaught error: stopping', 'uncaughtException']],
    stop: ['stopping', 'stopped'],
  })
})

describe('migrate and status: an error nothing caught ends them at once, exit 1, saying so', () => {
  for (const fault of ['exception', 'rejection'] as const) {
    test(`migrate, waiting for the migration lock, meets an uncaught ${fault}`, async () => {
      // Another migrator's lock (migration-lock.ts's key) keeps migrate polling for it.
      const other = new pg.Client({ connectionString: db.url, application_name: 'other-migrator' })
      await other.connect()
      let c: Child | null = null
      let code: number | 'still running'
      try {
        await other.query('select pg_advisory_lock($1)', [0x6d61696c6572])
        c = start(['migrate'], { FAULT: fault })
        await waitForStatement('outbox-mailer:migrate', 'pg_try_advisory_lock')
        c.p.kill('SIGUSR2')
        code = await exitedWithin(c, 20_000)
      } finally {
        await other.end()
      }
      const exited = await c.p.exited
      await Promise.all([c.stdout.ended, c.stderr.ended])
      expect({
        code,
        exited,
        lines: jsonLines(c.stdout.text())
          .filter((l) => l.level === 'error')
          .map((l) => [l.msg, l.origin, l.exitCode]),
        stderr: c.stderr.text().includes('uncaught error'),
      }).toEqual({
        code: 1,
        exited: 1,
        lines: [
          [
            'uncaught error: exiting',
            fault === 'exception' ? 'uncaughtException' : 'unhandledRejection',
            1,
          ],
        ],
        stderr: true,
      })
    })
  }

  test('status, a read held by a lock, meets an uncaught exception: exit 1, said on stderr, no report', async () => {
    const lock = await holdHandLock(db.url, 'mailer.email_outbox')
    let c: Child | null = null
    let code: number | 'still running'
    try {
      // --timeout 60: its reads wait up to 30 s for the lock, long enough to be signalled.
      c = start(['status', '--json', '--timeout', '60'], { FAULT: 'exception' })
      await waitForLockWait('outbox-mailer:status')
      c.p.kill('SIGUSR2')
      code = await exitedWithin(c, 20_000)
    } finally {
      await lock.release()
    }
    const exited = await c.p.exited
    await Promise.all([c.stdout.ended, c.stderr.ended])
    expect({
      code,
      exited,
      stdout: c.stdout.text(),
      stderr: c.stderr.text().includes('uncaught error (uncaughtException)'),
    }).toEqual({ code: 1, exited: 1, stdout: '', stderr: true })
  })
})
