// `bun run dev` with a variable it reads set wrong in the shell: every problem named in one message, exit 2, before its Postgres starts.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

// Spawns dev, which would start an embedded Postgres were the configuration taken.
setDefaultTimeout(120_000)

const DEV = resolve(import.meta.dir, '../../src/dev.ts')

test('a shell whose WORKER_CONCURRENCY and METRICS_PORT dev cannot take: exit 2 naming both, no stack trace, no Postgres started', async () => {
  const cwd = await mkdtemp(join(tmpdir(), 'outbox-dev-config-'))
  try {
    const p = Bun.spawn([process.execPath, DEV], {
      cwd,
      env: {
        PATH: process.env.PATH ?? '',
        PORT: '0',
        DEV_POSTGRES_PORT: '0',
        WORKER_CONCURRENCY: 'ten',
        METRICS_PORT: '70000',
      },
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const [code, stdout, stderr] = await Promise.all([
      p.exited,
      new Response(p.stdout).text(),
      new Response(p.stderr).text(),
    ])
    expect({
      code,
      stackTrace: stderr.includes('    at '),
      postgresStarted: stdout.includes('Postgres data in'),
      // Every variable a problem line names: those two alone, none dev sets itself (its stand-in
      // database URL, whose port DEV_POSTGRES_PORT=0 leaves to the system).
      named: [...stderr.matchAll(/^ {2}- (\w+): /gm)].map((m) => m[1]),
    }).toEqual({
      code: 2,
      stackTrace: false,
      postgresStarted: false,
      named: ['METRICS_PORT', 'WORKER_CONCURRENCY'],
    })
    expect(stderr).toStartWith('outbox-mailer dev: invalid configuration')
  } finally {
    await rm(cwd, { recursive: true, force: true })
  }
})
