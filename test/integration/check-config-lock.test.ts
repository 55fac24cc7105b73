// check-config --connect while a hand session's exclusive lock holds mailer.schema_migrations: bounded, the lock and its holder named, not a timeout alone.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { checkConfig } from '../../src/check-config.ts'
import { createTestDb, type TestDb } from '../support/db.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

let t: TestDb
beforeAll(async () => {
  t = await createTestDb()
})
afterAll(async () => {
  await t.drop()
})

test('the schema check waits for no lock: the problem names the lock on mailer.schema_migrations and its holder', async () => {
  const locker = new pg.Client({ connectionString: t.url, application_name: 'hand-session' })
  await locker.connect()
  try {
    const pid = (await locker.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
    await locker.query('begin')
    await locker.query('lock table mailer.schema_migrations in access exclusive mode')
    const r = await checkConfig(
      { MAIL_TRANSPORT: 'discard', DATABASE_URL: t.url },
      { connect: true, role: 'api', timeoutMs: 4_000 },
    )
    const named = `a lock on mailer.schema_migrations held by pid ${pid} (hand-session`
    expect({ named: r.problems.some((p) => p.includes(named)), problems: r.problems }).toEqual({
      named: true,
      problems: r.problems,
    })
  } finally {
    await locker.query('rollback').catch(() => {})
    await locker.end()
  }
})
