// readSchemaState's verdicts on a migrated database, against the binary's list as it is and as others would have it.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { type Migration, migrations } from '../../src/db/migrations.ts'
import { readSchemaState } from '../../src/db/schema-state.ts'
import { useTestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
const latest = migrations.at(-1)!.version
const names = (list: readonly Migration[]) => list.map((m) => m.name)
const future: Migration = { version: 9_999, name: '9999_future', sql: 'select 1' }
const without = (version: number) => migrations.filter((m) => m.version !== version)
const edited = (version: number, list: readonly Migration[] = migrations) =>
  list.map((m) => (m.version === version ? { ...m, sql: `${m.sql}\n-- edited` } : m))

/** The state read inside a transaction that `statements` change first, rolled back after. */
async function stateAfter(statements: string, list: readonly Migration[] = migrations) {
  const client = await t.pool.connect()
  try {
    await client.query('begin')
    if (statements) await client.query(statements)
    return await readSchemaState(client, list)
  } finally {
    await client.query('rollback')
    client.release()
  }
}

test('current: every migration of the binary applied, none it does not know', async () => {
  expect(await readSchemaState(t.pool)).toEqual({
    verdict: 'current',
    database: latest,
    binary: latest,
    missing: [],
    newer: [],
  })
})

test('behind: the binary has a migration the database lacks, named in missing', async () => {
  expect(await readSchemaState(t.pool, [...migrations, future])).toEqual({
    verdict: 'behind',
    database: latest,
    binary: 9_999,
    missing: ['9999_future'],
    newer: [],
  })
})

test('current with newer: an unknown migration declared compatible with older binaries', async () => {
  // The latest migration declares itself compatible: a binary without it serves on.
  expect(await readSchemaState(t.pool, without(latest))).toEqual({
    verdict: 'current',
    database: latest,
    binary: migrations.at(-2)!.version,
    missing: [],
    newer: [latest],
  })
})

test('ahead: an unknown migration that breaks older binaries', async () => {
  // 0001 declares nothing: a binary without it cannot serve this database.
  expect(await readSchemaState(t.pool, without(1))).toEqual({
    verdict: 'ahead',
    database: latest,
    binary: latest,
    missing: [],
    newer: [1],
  })
})

test('ahead: a newer migration applied while one of this binary is not', async () => {
  expect(await readSchemaState(t.pool, [...without(latest), future])).toEqual({
    verdict: 'ahead',
    database: latest,
    binary: 9_999,
    missing: ['9999_future'],
    newer: [latest],
  })
})

test('edited: an applied migration differs from the binary copy; missing and newer still said', async () => {
  expect(await readSchemaState(t.pool, [...edited(2), future])).toEqual({
    verdict: 'edited',
    database: latest,
    binary: 9_999,
    missing: ['9999_future'],
    newer: [],
  })
})

test('the first applied migration in doubt decides between edited and ahead', async () => {
  // 0001 unknown (breaking) comes before the edited 0002; the edited 0002 before an unknown 0005.
  expect((await readSchemaState(t.pool, edited(2, without(1)))).verdict).toBe('ahead')
  expect((await readSchemaState(t.pool, edited(2, without(5)))).verdict).toBe('edited')
})

test('missing: a table with nothing recorded, every migration of the binary named', async () => {
  expect(await stateAfter('delete from mailer.schema_migrations')).toEqual({
    verdict: 'missing',
    database: null,
    binary: latest,
    missing: names(migrations),
    newer: [],
  })
})

test('missing: no mailer schema at all', async () => {
  expect(await stateAfter('drop schema mailer cascade')).toEqual({
    verdict: 'missing',
    database: null,
    binary: latest,
    missing: names(migrations),
    newer: [],
  })
})
