// The embedded migration list against sql/: every file listed once, in order, under its own name and with its own text.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { readdirSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { migrations } from '../../src/db/migrations.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const SQL = resolve(import.meta.dir, '../../sql')

test('the migration list names every file in sql/, in ascending order, each with its version and its text', () => {
  const files = readdirSync(SQL)
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((f) => f.slice(0, -'.sql'.length))
  expect(migrations.map((m) => m.name)).toEqual(files)
  for (const m of migrations) {
    expect({ name: m.name, version: m.version }).toEqual({
      name: m.name,
      version: Number(m.name.slice(0, 4)),
    })
    expect({
      name: m.name,
      same: m.sql === readFileSync(resolve(SQL, `${m.name}.sql`), 'utf8'),
    }).toEqual({
      name: m.name,
      same: true,
    })
  }
  const versions = migrations.map((m) => m.version)
  expect(versions).toEqual([...new Set(versions)].sort((a, b) => a - b))
})
