// `bun run dev` as a process: the banner that says it is running comes once the HTTP server listens; a second one in the same checkout says why it cannot start.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { pollUntil } from '../support/events.ts'
import { growingOutput } from '../support/growing-output.ts'
import { listeningPort } from '../support/listening-port.ts'

// Starts an embedded Postgres of its own (initdb, migrations): slower than a unit test, still bounded.
setDefaultTimeout(120_000)

const DEV = resolve(import.meta.dir, '../../src/dev.ts')
const RUNNING = 'outbox-mailer is running'

test('the banner is printed after "http listening", and the API docs it names answer at once', async () => {
  // dev keeps its data and mail under the working directory (or a temp directory named after it).
  const cwd = await mkdtemp(join(tmpdir(), 'outbox-dev-banner-'))
  const p = Bun.spawn([process.execPath, DEV], {
    cwd,
    env: {
      PATH: process.env.PATH ?? '',
      // The system's choice, read back from the "http listening" line; DEV_POSTGRES_PORT=0 is a
      // free port dev's Postgres start chooses (again, if another process takes it first), which
      // the banner's database URL names. A port picked here could be another's by Postgres's bind.
      PORT: '0',
      DEV_POSTGRES_PORT: '0',
    },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const out = growingOutput(p.stdout)
  const stderr = new Response(p.stderr).text()
  let dataDir: string | null = null
  try {
    await pollUntil(
      async () => (out.text().includes(RUNNING) || p.exitCode !== null ? true : undefined),
      100_000,
    )
    const stdout = out.text()
    dataDir = /Postgres data in (\S+)/.exec(stdout)?.[1] ?? null
    expect(stdout).toContain(RUNNING)
    const before = stdout.slice(0, stdout.indexOf(RUNNING))
    expect(before).toContain('"msg":"http listening"')
    const port = await listeningPort(out, p.exited)
    // The port served, not PORT's 0.
    expect(stdout).toContain(`API docs    http://localhost:${port}/docs`)
    const docs = await fetch(`http://127.0.0.1:${port}/docs`)
    expect(docs.status).toBe(200)
    // The database's port as its Postgres bound it, not DEV_POSTGRES_PORT's 0.
    const dbPort = Number(/database {4}postgres:\/\/\S+@127\.0\.0\.1:(\d+)\//.exec(stdout)?.[1])
    expect(dbPort).toBeGreaterThan(0)
    // A second dev in the same checkout (or one whose earlier run was killed and left its Postgres
    // running): its Postgres cannot take the data directory. Said in a line with what to do, exit 1.
    const second = Bun.spawn([process.execPath, DEV], {
      cwd,
      env: {
        PATH: process.env.PATH ?? '',
        // Never listens: its Postgres cannot start.
        PORT: '0',
        DEV_POSTGRES_PORT: '0',
      },
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const [code, secondErr] = await Promise.all([second.exited, new Response(second.stderr).text()])
    expect({ code, stackTrace: secondErr.includes('    at ') }).toEqual({
      code: 1,
      stackTrace: false,
    })
    expect(secondErr).toMatch(
      /^outbox-mailer dev: the embedded Postgres did not start: another Postgres \(PID \d+\) is running on this checkout's data/,
    )
    expect(secondErr).toContain('Ctrl+C')
  } finally {
    p.kill('SIGTERM')
    await p.exited
    await out.ended
    // The embedded Postgres stops with dev (SIGINT at its exit): its data goes once it has.
    if (dataDir) {
      const pid = join(dataDir, 'postmaster.pid')
      await pollUntil(async () => (existsSync(pid) ? undefined : true), 30_000)
      await rm(dirname(dataDir), { recursive: true, force: true })
    }
    await rm(cwd, { recursive: true, force: true })
  }
  expect(await stderr).toBe('')
})
