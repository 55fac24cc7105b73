// `migrate` run as a role that may not change the schema (the service's, as a new team sets it up): the failure names the role and the URL to give migrate instead.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { randomBytes } from 'node:crypto'
import { loadConfig } from '../../src/config.ts'
import { migrateEvery } from '../../src/db/migrate-every.ts'
import { EXIT } from '../../src/errors.ts'
import { silentLogger } from '../../src/log.ts'
import { testCluster } from '../preload.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { adminQuery } from '../support/postgres.ts'
import { withRoleRefusedConnect } from '../support/refused-connect-role.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const role = `migrate_svc_${process.pid}`
// Generated per run: no fixed password in the repository.
const password = `pw-${randomBytes(12).toString('hex')}`
const emptyDb = `outbox_migrole_${process.pid}`
let migrated: TestDb

beforeAll(async () => {
  const cluster = await testCluster()
  await adminQuery(cluster.admin, `create role ${role} login password '${password}'`)
  await adminQuery(cluster.admin, `create database ${emptyDb}`)
  migrated = await createTestDb()
  // The deploy guide's step 7 grants for the service's role, as its DBA runs them.
  await migrated.pool.query(`
    grant usage on schema mailer to ${role};
    grant select, insert, update, delete on all tables in schema mailer to ${role};`)
})
afterAll(async () => {
  const cluster = await testCluster()
  // Each drop is tried whatever the one before it did (bun runs no hook of the file after one that
  // throws), the role last: it owns emptyDb's schema and holds grants in migrated's database. Every
  // failure is named, not the first alone.
  const failed: string[] = []
  for (const [what, drop] of [
    ['the migrated database', async () => migrated?.drop()],
    [emptyDb, () => adminQuery(cluster.admin, `drop database if exists ${emptyDb} with (force)`)],
    [`role ${role}`, () => adminQuery(cluster.admin, `drop role if exists ${role}`)],
  ] as const) {
    await drop().catch((e: Error) => failed.push(`${what}: ${e.message}`))
  }
  if (failed.length > 0) throw new Error(`clean-up failed: ${failed.join('; ')}`)
})

/** `url` with the service's role in it. */
function asRole(url: string): string {
  const u = new URL(url)
  u.username = role
  u.password = password
  return u.toString()
}

/** What `outbox-mailer migrate` prints on stderr, and its exit code, for `env`. */
async function migrateWith(env: Record<string, string>) {
  const err: string[] = []
  const exit = await migrateEvery(loadConfig(env, { role: 'api' }), silentLogger, {
    out: () => {},
    err: (line) => err.push(line),
  })
  return { exit, err }
}

describe('migrate as a role that may not change the schema', () => {
  test('a first migrate by a role without CREATE on the database names the role, and LISTEN_DATABASE_URL as the URL to give it the owner’s', async () => {
    const url = asRole((await testCluster()).url(emptyDb))
    const r = await migrateWith({ DATABASE_URL: url })
    expect(r.exit).toBe(EXIT.failure)
    expect(r.err).toEqual([
      `default (DATABASE_URL): permission denied for database ${emptyDb}: SQLSTATE 42501, the role ${role} may not create or change the mailer schema: migrate runs as the role that owns it (before the first migrate, one that may create schemas: grant create on database ${emptyDb} to it); set LISTEN_DATABASE_URL to that role's direct URL, the service's role staying in DATABASE_URL (deploy guide, step 7)`,
    ])
  })

  test('the service’s role with its documented grants, given as the direct URL, is told the same', async () => {
    const r = await migrateWith({
      DATABASE_URL: migrated.url,
      LISTEN_DATABASE_URL: asRole(migrated.url),
    })
    expect(r.exit).toBe(EXIT.failure)
    const dbName = new URL(migrated.url).pathname.slice(1)
    expect(r.err).toEqual([
      expect.stringMatching(
        new RegExp(
          `^default \\(LISTEN_DATABASE_URL\\): permission denied for database ${dbName}: SQLSTATE 42501, the role ${role} may not create or change the mailer schema: .*set LISTEN_DATABASE_URL to that role's direct URL`,
        ),
      ),
    ])
  })

  test('with several databases the advice names the listed database’s listenUrl', async () => {
    const url = asRole((await testCluster()).url(emptyDb))
    const r = await migrateWith({
      MAILER_DATABASES: JSON.stringify([{ name: 'shop', url }]),
    })
    expect(r.exit).toBe(EXIT.failure)
    expect(r.err[0]).toContain(
      "set MAILER_DATABASES shop.listenUrl to that role's direct URL, the service's role staying in MAILER_DATABASES shop.url",
    )
  })

  test('a role refused CONNECT is not told about the schema: the server’s words, as before', async () => {
    const cluster = await testCluster()
    await withRoleRefusedConnect(
      cluster,
      cluster.url(emptyDb),
      'migrate_noconnect',
      async (url) => {
        const r = await migrateWith({ DATABASE_URL: url.toString() })
        expect(r.exit).toBe(EXIT.failure)
        expect(r.err).toEqual([
          expect.stringMatching(
            /^default \(DATABASE_URL\): permission denied for database "?\w+"?$/,
          ),
        ])
      },
    )
  })
})
