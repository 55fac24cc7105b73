// What serve and migrate print is JSON lines, a runtime warning included: none lands raw on stderr.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { resolve } from 'node:path'
import { freePort } from '../../src/embedded-postgres.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const MAIN = resolve(import.meta.dir, '../../src/main.ts')

let db: TestDb
beforeAll(async () => {
  db = await createTestDb()
})
afterAll(async () => {
  await db?.drop()
})

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

test('serve: stdout is JSON lines only, the sslmode warning one of them at warn; stderr stays empty', async () => {
  const p = Bun.spawn([process.execPath, MAIN, 'serve', '--role', 'api'], {
    env: {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: db.url,
      // --role api never listens: this URL is only parsed.
      LISTEN_DATABASE_URL: withSslmode(db.url),
      HOST: '127.0.0.1',
      PORT: String(await freePort()),
      API_JWT_SECRET: 'k'.repeat(40),
    },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  let stdout = ''
  const decoder = new TextDecoder()
  const reading = (async () => {
    for await (const chunk of p.stdout) stdout += decoder.decode(chunk, { stream: true })
  })()
  const stderr = new Response(p.stderr).text()
  try {
    await pollUntil(async () => (stdout.includes('"http listening"') ? true : undefined), 20_000)
  } finally {
    p.kill('SIGTERM')
  }
  expect(await p.exited).toBe(0)
  await reading
  expect(await stderr).toBe('')
  const lines = parsedLines(stdout)
  expect(lines.filter((l) => l.msg === 'process warning')).toEqual([
    expect.objectContaining({
      level: 'warn',
      warning: 'Warning',
      detail: expect.stringMatching(/^SECURITY WARNING: The SSL modes 'prefer', 'require'/),
    }),
  ])
})

test('migrate: its log lines and the warning are JSON, its result one plain line; stderr stays empty', async () => {
  const p = Bun.spawn([process.execPath, MAIN, 'migrate'], {
    env: {
      PATH: process.env.PATH ?? '',
      // migrate connects over LISTEN_DATABASE_URL: DATABASE_URL is only parsed.
      DATABASE_URL: withSslmode(db.url),
      LISTEN_DATABASE_URL: db.url,
    },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const [code, stdout, stderr] = await Promise.all([
    p.exited,
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
  ])
  expect(stderr).toBe('')
  expect(code).toBe(0)
  const printed = stdout.trimEnd().split('\n')
  expect(printed.at(-1)).toMatch(/^default: up to date \(schema version \d+\)$/)
  const lines = parsedLines(printed.slice(0, -1).join('\n'))
  expect(lines.filter((l) => l.msg === 'process warning')).toHaveLength(1)
})
