// A role a test creates beside its test database is dropped with that database, its grants there or not, failed test or not.
import { afterAll, expect, setDefaultTimeout, test } from 'bun:test'
import { testCluster } from '../preload.ts'
import { useTestDb } from '../support/db.ts'
import { adminQuery } from '../support/postgres.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
const role = `test_db_role_${process.pid}`

// Registered after useTestDb's drop, so run after it (bun runs a file's afterAll hooks in the order
// registered): the server holds the role no more, though no hook of this file dropped it.
afterAll(async () => {
  const left = await adminQuery(
    (await testCluster()).admin,
    'select rolname from pg_roles where rolname = $1',
    [role],
  )
  expect(left.rows).toEqual([])
})

test('a role granted privileges in the test database is made there', async () => {
  await t.createRole(role, 'nologin')
  await t.pool.query(`grant usage on schema mailer to ${role}`)
  const r = await t.pool.query('select 1 from pg_roles where rolname = $1', [role])
  expect(r.rowCount).toBe(1)
})

test('a role whose name does not end in the run’s pid is refused before it is made: a killed run’s leftovers are found by it (README)', async () => {
  const name = `test_db_role_${process.pid}_x`
  await expect(t.createRole(name, 'nologin')).rejects.toThrow(`ends in _${process.pid}`)
  const r = await t.pool.query('select 1 from pg_roles where rolname = $1', [name])
  expect(r.rowCount).toBe(0)
})
