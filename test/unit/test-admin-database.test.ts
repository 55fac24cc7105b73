// The tests reach the run's server through the database TEST_DATABASE_URL names, never one they assume is called `postgres`.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { readFile } from 'node:fs/promises'
import { relative, resolve } from 'node:path'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const ROOT = resolve(import.meta.dir, '../..')

/**
 * A user's own server (TEST_DATABASE_URL) need not let its role into a database named `postgres`
 * (a managed server's maintenance database is another; a DBA may close it): creating and dropping
 * databases and roles goes through TestCluster.admin, the URL as given. Checked on a cluster whose
 * `postgres` allowed no connections, TEST_DATABASE_URL naming another database: before, every file
 * that opens a test database failed with `database "postgres" is not currently accepting
 * connections`. The embedded servers some files start for themselves (`server`, `embedded`) have one.
 */
const ASSUMED = [
  /\b(?:cluster|testCluster\(\)\))\.url\(\s*['"`]postgres['"`]\s*\)/,
  /\.pathname\s*=\s*['"`]\/postgres['"`]/,
]

test("no test names the run's server's database `postgres`: they take TestCluster.admin", async () => {
  const found: string[] = []
  for await (const file of new Bun.Glob('test/**/*.ts').scan({ cwd: ROOT, absolute: true })) {
    if (file === import.meta.path) continue
    const lines = (await readFile(file, 'utf8')).split('\n')
    lines.forEach((line, i) => {
      if (ASSUMED.some((r) => r.test(line))) found.push(`${relative(ROOT, file)}:${i + 1}`)
    })
  }
  expect(found).toEqual([])
})

test('the check finds the spellings it looks for', () => {
  const hits = [
    "await adminQuery(cluster.url('postgres'), 'create database x')",
    "adminQuery((await testCluster()).url('postgres'), 'drop role r')",
    "url.pathname = '/postgres'",
  ].filter((line) => ASSUMED.some((r) => r.test(line)))
  expect(hits).toHaveLength(3)
  expect(ASSUMED.some((r) => r.test("server.url('postgres')"))).toBe(false)
})
