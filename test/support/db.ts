// A fresh database per test file (or per test), cloned from the run's migrated template.
import { afterAll, afterEach, beforeAll, beforeEach } from 'bun:test'
import type { Kysely } from 'kysely'
import type pg from 'pg'
import { type DbHandle, openDb } from '../../src/db/open.ts'
import type { Database } from '../../src/db/schema.ts'
import { silentLogger } from '../../src/log.ts'
import { testCluster } from '../preload.ts'
import { adminQuery } from './postgres.ts'

export interface TestDb extends DbHandle {
  url: string
  db: Kysely<Database>
  pool: pg.Pool
  /** Empties every mailer table (between tests). */
  reset(): Promise<void>
  /**
   * `create role <role> <options>` on the run's server, dropped by drop() just after this database
   * (where its grants are): a file's own afterAll runs after useTestDb's drop (bun runs a file's
   * afterAll hooks in the order registered), when a `drop owned by` here finds the handle closed,
   * and a role dropped there only stayed on a TEST_DATABASE_URL server, run after run.
   */
  createRole(role: string, options: string): Promise<void>
  /** Drops the database, then the roles createRole made (a failed test's too). */
  drop(): Promise<void>
}

export async function createTestDb(): Promise<TestDb> {
  const cluster = await testCluster()
  const name = `outbox_t_${crypto.randomUUID().replaceAll('-', '').slice(0, 16)}`
  await adminQuery(cluster.admin, `create database ${name} template ${cluster.templateName}`)
  const url = cluster.url(name)
  // A database of its own, as if migrated apart: a clone of the template would share its id
  // (mailer.database_identity), and so be taken for one database by Graph lookups (README).
  await adminQuery(url, 'update mailer.database_identity set id = gen_random_uuid()')
  const handle = openDb({ name: 'test', url, log: silentLogger, maxConnections: 20 })
  const roles: string[] = []
  return {
    ...handle,
    url,
    reset: async () => {
      // Every mailer table but schema_migrations and database_identity (the database's id, 0048):
      // a pause (mailbox_pacing) or a held slot left by one test would otherwise hold the next back
      // (test-db-reset.test.ts).
      // A statement a previous test left running (a worker's stop must wait for each of its own,
      // side-statements.ts) may deadlock with the TRUNCATE's locks: the TRUNCATE, the victim, goes
      // again, a bounded number of times; the leftover then holds no lock.
      // Truncated: the outbox and its history always (RESTART IDENTITY sets their ids back to 1, and
      // an insert a check refused took an id and wrote nothing), the rest only when written since
      // they were last truncated (a heap longer than 0 bytes). One never written holds no row, and
      // a TRUNCATE of it would only make its empty files and indexes anew: about half of a reset's
      // Postgres CPU (11 ms of 24, measured), paid before each of some 800 tests a run.
      for (let tries = 1; ; tries++) {
        try {
          await handle.pool.query(`do $$
            declare written text;
            begin
              select string_agg(t, ', ' order by n) into written
                from unnest(array['mailer.templates', 'mailer.workers', 'mailer.mailbox_pacing',
                                  'mailer.send_slots', 'mailer.sender_mailboxes',
                                  'mailer.probe_due_hints', 'mailer.owed_probe_lookups',
                                  'mailer.stopped_workers_last_send'])
                     with ordinality as u(t, n)
               where pg_relation_size(t::regclass) > 0;
              execute 'truncate mailer.email_attempts, mailer.email_outbox'
                      || coalesce(', ' || written, '') || ' restart identity cascade';
            end $$`)
          return
        } catch (err) {
          if ((err as { code?: unknown }).code !== '40P01' || tries >= 5) throw err
        }
      }
    },
    createRole: async (role, options) => {
      // The run's pid ends it, as its template's name carries it: the README's clean-up after a
      // killed run finds the run's roles by it.
      if (!role.endsWith(`_${process.pid}`)) {
        throw new Error(`a test role's name ends in _${process.pid} (this run's pid): ${role}`)
      }
      await adminQuery(cluster.admin, `create role ${role} ${options}`)
      roles.push(role)
    },
    drop: async () => {
      await handle.close()
      await adminQuery(cluster.admin, `drop database if exists ${name} with (force)`)
      // The database gone, so are the role's grants in it: one it holds elsewhere fails the drop here.
      for (const role of roles.splice(0)) {
        await adminQuery(cluster.admin, `drop role if exists ${role}`)
      }
    },
  }
}

/**
 * This test file's database: created before its tests, dropped after them and, with `resetEach`,
 * emptied before each test; with `freshEach`, one database for each test, created before it and
 * dropped after it (a migration one test applied is one the next test's migrate does not know). The
 * returned handle forwards to it once created (use it inside hooks and tests, not at the file's top level).
 */
export function useTestDb(o: { resetEach?: boolean; freshEach?: boolean } = {}): TestDb {
  let current: TestDb | null = null
  const [before, after] = o.freshEach ? [beforeEach, afterEach] : [beforeAll, afterAll]
  before(async () => {
    current = await createTestDb()
  })
  after(async () => {
    await current?.drop()
    // Per test only: a file's own afterAll may still reach the dropped database's handle (and
    // catch what it throws), run after this one.
    if (o.freshEach) current = null
  })
  if (o.resetEach) {
    beforeEach(async () => {
      await current?.reset()
    })
  }
  return new Proxy({} as TestDb, {
    get(_, key) {
      if (!current)
        throw new Error('the test database is created in beforeAll; use it from there on')
      return Reflect.get(current, key)
    },
  })
}
