// What serve and migrate print is JSON lines, a runtime warning included; status and check-config report it in their output: none lands raw on stderr.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { resolve } from 'node:path'
import { runBinary } from '../support/binary.ts'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { growingOutput } from '../support/growing-output.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const MAIN = resolve(import.meta.dir, '../../src/main.ts')

const db = useTestDb()

/**
 * Any URL of the configuration that says sslmode=require makes pg-connection-string emit a multi-line
 * SECURITY WARNING as it is parsed (at the start). The test cluster serves no TLS, so the URL the
 * command connects with stays plain and the other one carries the sslmode: parsed, never used.
 */
const withSslmode = (url: string) => `${url}?sslmode=require`

function parsedLines(stdout: string): Record<string, unknown>[] {
  return stdout
    .trimEnd()
    .split('\n')
    .map((line) => JSON.parse(line))
}

/** Runs a command of the entry point to its exit with `env` and PATH only. */
const run = (args: string[], env: Record<string, string>) =>
  runBinary(process.execPath, [MAIN, ...args], { PATH: process.env.PATH ?? '', ...env })

test('serve: stdout is JSON lines only, the sslmode warning one of them at warn; stderr stays empty', async () => {
  const p = Bun.spawn([process.execPath, MAIN, 'serve', '--role', 'api'], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: db.url,
      // --role api never listens: this URL is only parsed.
      LISTEN_DATABASE_URL: withSslmode(db.url),
      HOST: '127.0.0.1',
      // Any port the system gives: nothing connects to it, and one picked here could be taken first.
      PORT: '0',
      API_JWT_SECRET: 'k'.repeat(40),
    },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const stdout = growingOutput(p.stdout)
  const stderr = new Response(p.stderr).text()
  try {
    await pollUntil(
      async () => (stdout.text().includes('"http listening"') ? true : undefined),
      20_000,
    )
  } finally {
    p.kill('SIGTERM')
  }
  expect(await p.exited).toBe(0)
  await stdout.ended
  expect(await stderr).toBe('')
  const lines = parsedLines(stdout.text())
  expect(lines.filter((l) => l.msg === 'process warning')).toEqual([
    expect.objectContaining({
      level: 'warn',
      warning: 'Warning',
      detail: expect.stringMatching(/^SECURITY WARNING: The SSL modes 'prefer', 'require'/),
    }),
  ])
})

test('migrate: its log lines and the warning are JSON, its result one plain line; stderr stays empty', async () => {
  const { code, stdout, stderr } = await run(['migrate'], {
    // migrate connects over LISTEN_DATABASE_URL: DATABASE_URL is only parsed.
    DATABASE_URL: withSslmode(db.url),
    LISTEN_DATABASE_URL: db.url,
  })
  expect(stderr).toBe('')
  expect(code).toBe(0)
  const printed = stdout.trimEnd().split('\n')
  expect(printed.at(-1)).toMatch(/^default: up to date \(schema version \d+\)$/)
  const lines = parsedLines(printed.slice(0, -1).join('\n'))
  expect(lines.filter((l) => l.msg === 'process warning')).toHaveLength(1)
})

const SSLMODE_WARNING =
  /^SECURITY WARNING: The SSL modes 'prefer', 'require', and 'verify-ca' .+ for libpq SSL mode definitions\.$/

// status connects over DATABASE_URL: LISTEN_DATABASE_URL is only parsed.
const statusEnv = () => ({ DATABASE_URL: db.url, LISTEN_DATABASE_URL: withSslmode(db.url) })

test('status --json: stdout is one JSON object whose warnings hold the sslmode warning, one line; stderr stays empty', async () => {
  const r = await run(['status', '--json'], statusEnv())
  expect(r.stderr).toBe('')
  expect(r.code).toBe(0)
  const report = JSON.parse(r.stdout)
  expect(report.warnings).toEqual([expect.stringMatching(SSLMODE_WARNING)])
  expect(report.databases).toHaveLength(1)
})

test('status: the table ends with the warning on one line; stderr stays empty', async () => {
  const r = await run(['status'], statusEnv())
  expect(r.stderr).toBe('')
  expect(r.code).toBe(0)
  const lines = r.stdout.trimEnd().split('\n')
  expect(lines.filter((l) => l.startsWith('warning: '))).toEqual([
    expect.stringMatching(/^warning: SECURITY WARNING: The SSL modes .+ definitions\.$/),
  ])
})

test('check-config: the warning is one of its warning lines on stdout; stderr holds only problems', async () => {
  const env = { DATABASE_URL: withSslmode(db.url), API_JWT_SECRET: 'k'.repeat(40) }
  // With --connect the database is reached, and refuses TLS (the test cluster serves none): a
  // problem, on stderr, as every problem is. Without, the configuration is only parsed.
  for (const [args, exit] of [
    [['--connect'], 2],
    [[], 0],
  ] as const) {
    const r = await run(['check-config', '--role', 'api', ...args], env)
    const label = args.join(' ') || '(no flag)'
    const stderr = r.stderr.trimEnd().split('\n').filter(Boolean)
    expect([label, stderr.filter((l) => !l.startsWith('problem: '))]).toEqual([label, []])
    expect([label, r.code]).toEqual([label, exit])
    const lines = r.stdout.trimEnd().split('\n')
    expect([label, lines.filter((l) => l.includes('SECURITY WARNING'))]).toEqual([
      label,
      [expect.stringMatching(/^warning: SECURITY WARNING: The SSL modes .+ definitions\.$/)],
    ])
  }
})
