import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { assertSchemaCurrent, checksumOf, migrate } from '../../src/db/migrate.ts'
import { migrations } from '../../src/db/migrations.ts'
import { openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { testCluster } from '../preload.ts'
import { adminQuery } from '../support/postgres.ts'

const created: string[] = []
let adminUrl: string
let urlOf: (db: string) => string

async function emptyDatabase(): Promise<string> {
  const name = `outbox_m_${crypto.randomUUID().replaceAll('-', '').slice(0, 12)}`
  await adminQuery(adminUrl, `create database ${name}`)
  created.push(name)
  return urlOf(name)
}

beforeAll(async () => {
  const cluster = await testCluster()
  adminUrl = cluster.url('postgres')
  urlOf = cluster.url
})
afterAll(async () => {
  for (const name of created)
    await adminQuery(adminUrl, `drop database if exists ${name} with (force)`)
})

describe('migrate', () => {
  test('applies every migration once, then is a no-op', async () => {
    const url = await emptyDatabase()
    const first = await migrate({ url, log: silentLogger })
    expect(first.applied).toEqual(migrations.map((m) => m.version))
    const second = await migrate({ url, log: silentLogger })
    expect(second.applied).toEqual([])
    const { rows } = await adminQuery(url, 'select version, checksum from mailer.schema_migrations')
    expect(rows).toEqual(
      migrations.map((m) => ({ version: m.version, checksum: checksumOf(m.sql) })),
    )
  })

  test('six migrators racing on one database apply each migration exactly once', async () => {
    const url = await emptyDatabase()
    const results = await Promise.all(
      Array.from({ length: 6 }, () => migrate({ url, log: silentLogger })),
    )
    const applied = results.flatMap((r) => r.applied)
    expect(applied.sort()).toEqual(migrations.map((m) => m.version))
    const { rows } = await adminQuery(
      url,
      'select count(*)::int as n from mailer.schema_migrations',
    )
    expect(rows[0].n).toBe(migrations.length)
  })

  test('refuses a migration edited after it was applied', async () => {
    const url = await emptyDatabase()
    await migrate({ url, log: silentLogger })
    const edited = migrations.map((m) => ({ ...m, sql: `${m.sql}\n-- edited` }))
    await expect(migrate({ url, log: silentLogger, migrations: edited })).rejects.toMatchObject({
      code: 'migration_checksum_mismatch',
    })
  })

  test('refuses a database that is ahead of the binary', async () => {
    const url = await emptyDatabase()
    await migrate({ url, log: silentLogger })
    await adminQuery(
      url,
      `insert into mailer.schema_migrations (version, name, checksum) values (9999, '9999_future', 'x')`,
    )
    await expect(migrate({ url, log: silentLogger })).rejects.toMatchObject({
      code: 'schema_ahead',
    })
  })

  test('a migrator waiting on the lock past lock_timeout fails clearly', async () => {
    const url = await emptyDatabase()
    const pg = await import('pg')
    const holder = new pg.default.Client({ connectionString: url })
    await holder.connect()
    await holder.query('select pg_advisory_lock($1)', [0x6d61696c6572])
    try {
      await expect(migrate({ url, log: silentLogger, lockTimeoutMs: 200 })).rejects.toMatchObject({
        code: 'migration_lock_timeout',
      })
    } finally {
      await holder.end()
    }
  })

  test('serve’s schema check names what to run', async () => {
    const url = await emptyDatabase()
    const h = openDb({ name: 'x', url, log: silentLogger })
    try {
      await expect(assertSchemaCurrent(h.pool, 'x')).rejects.toMatchObject({
        code: 'schema_missing',
        message: expect.stringContaining('outbox-mailer migrate'),
      })
      await migrate({ url, log: silentLogger })
      await assertSchemaCurrent(h.pool, 'x')
      const longer = [...migrations, { version: 9998, name: '9998_next', sql: 'select 1' }]
      await expect(assertSchemaCurrent(h.pool, 'x', longer)).rejects.toMatchObject({
        code: 'schema_outdated',
      })
    } finally {
      await h.close()
    }
  })
})
