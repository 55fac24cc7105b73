// A role a test makes on the run's server is made by TestDb.createRole, dropped with its database, unless its file is listed here with how it drops it.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { readFile } from 'node:fs/promises'
import { relative, resolve } from 'node:path'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const ROOT = resolve(import.meta.dir, '../..')

/**
 * Roles are the server's, not a database's: on a TEST_DATABASE_URL server one a run leaves stays
 * there run after run. A file's own afterAll runs after useTestDb's drop (bun runs a file's afterAll
 * hooks in the order registered), so a cleanup there that reaches the test database fails and, if
 * it catches what it throws, leaves the role: connection-limit's `limited_<pid>` and schema-gone's
 * `outbox_r_…` did. TestDb.createRole drops the role just after the database. The files below make
 * roles themselves, for a reason, and drop them in a `finally` or after every database they use.
 */
const OWN_ROLES: Record<string, string> = {
  'test/support/db.ts': 'TestDb.createRole itself',
  'test/support/refused-connect-role.ts': 'a role for one callback, dropped in its finally',
  'test/integration/serve-start.test.ts': 'one role per test, dropped in its finally',
  'test/integration/same-database-connected.test.ts':
    'one role for one test, dropped in its finally',
  'test/integration/status-command.test.ts':
    'roles for one test each (withRole, the read-only reader), dropped in its finally',
  'test/integration/migrate-role.test.ts':
    'a role owning the schema it migrates in a database of the file’s own: dropped after both databases',
  'test/faults/chaos/worker-role.ts':
    'the fault suite’s own embedded cluster, never TEST_DATABASE_URL',
}

const MAKES_ROLE = /\bcreate\s+(?:role|user)\b/i

test('no test makes a role on the server but through TestDb.createRole or a file listed with how it drops it', async () => {
  const found: string[] = []
  for await (const file of new Bun.Glob('test/**/*.ts').scan({ cwd: ROOT, absolute: true })) {
    const path = relative(ROOT, file)
    if (file === import.meta.path || path in OWN_ROLES) continue
    const lines = (await readFile(file, 'utf8')).split('\n')
    lines.forEach((line, i) => {
      if (MAKES_ROLE.test(line)) found.push(`${path}:${i + 1}`)
    })
  }
  expect(found).toEqual([])
})

test('the check finds the spellings it looks for, and each listed file still makes a role', async () => {
  const hits = [
    "await t.pool.query(`create role limited_1 login password 'pw' connection limit 1`)",
    'await adminQuery(t.url, `CREATE USER r1`)',
  ].filter((line) => MAKES_ROLE.test(line))
  expect(hits).toHaveLength(2)
  expect(MAKES_ROLE.test("await t.createRole(role, 'nologin')")).toBe(false)
  const stale: string[] = []
  for (const path of Object.keys(OWN_ROLES)) {
    if (!MAKES_ROLE.test(await readFile(resolve(ROOT, path), 'utf8'))) stale.push(path)
  }
  expect(stale).toEqual([])
})
