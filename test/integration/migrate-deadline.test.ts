// migrate's whole-run deadline (MIGRATE_DEADLINE_SECONDS, --deadline): a wait or a migration's own work past it is stopped, undone or named, and the database and migration it stopped at said.
import { expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { systemClock, waitAtMost } from '../../src/clock.ts'
import { loadConfig } from '../../src/config.ts'
import { migrate } from '../../src/db/migrate.ts'
import { migrateEvery } from '../../src/db/migrate-every.ts'
import { type Migration, migrations } from '../../src/db/migrations.ts'
import { EXIT } from '../../src/errors.ts'
import { createLogger, silentLogger } from '../../src/log.ts'
import { createTestDb, useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { holdHandLock } from '../support/hand-lock.ts'
import { ENDED_WITHIN_MS, migrateWithin, outcome } from '../support/migrate-outcome.ts'
import { adminQuery } from '../support/postgres.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). A test waits
// up to ENDED_WITHIN_MS for migrate, then drops its databases.
setDefaultTimeout(60_000)

// A database each: a migration a test applied is one the next test's binary does not know.
const t = useTestDb({ freshEach: true })

/** How migrate with the migrations and `m` ended, given a deadline of 3 s. */
const migrateWithin3s = (m: Migration) => outcome(migrateWithin(t.url, [m]))

const OURS = `select count(*)::int as n from pg_stat_activity
  where datname = current_database() and application_name = 'outbox-mailer:migrate'`

/** How migrate with `m` ended, given 3 s, while a hand session held `table`; that session's pid. */
async function migrateBehindHandLock(table: string, m: Migration) {
  const lock = await holdHandLock(t.url, table)
  try {
    return { stopped: await migrateWithin3s(m), pid: lock.pid }
  } finally {
    await lock.release()
  }
}

/** The deadline's stop, `where` said, naming the hand session `pid` as in the way. */
const stoppedNaming = (where: string, pid: number) =>
  expect.objectContaining({
    code: 'migration_deadline',
    message: expect.stringMatching(
      new RegExp(
        `^migrate's deadline of 3 s \\(MIGRATE_DEADLINE_SECONDS, or --deadline\\) passed ${RegExp.escape(where)}.*pid ${pid} \\(hand-session.*Run migrate again`,
      ),
    ),
  })

test('a hand lock held past the deadline: migrate stops waiting, rolls the migration back, and names it, the holder and what to do', async () => {
  const m = {
    version: 1101,
    name: '1101_alter_outbox',
    sql: 'alter table mailer.email_outbox add column if not exists scratch_1101 int;',
  }
  const { stopped, pid } = await migrateBehindHandLock('mailer.email_outbox', m)
  expect(stopped).toEqual(
    stoppedNaming(
      'during migration 1101_alter_outbox, which was rolled back: nothing of it is applied',
      pid,
    ),
  )
  const { rows } = await adminQuery(
    t.url,
    `select (select count(*)::int from mailer.schema_migrations where version = 1101) as recorded,
            (select count(*)::int from pg_attribute where attrelid = 'mailer.email_outbox'::regclass
                and attname = 'scratch_1101') as columns`,
  )
  expect(rows).toEqual([{ recorded: 0, columns: 0 }])
})

test("a migration's own work past the deadline (a server-side sleep, as a long index build) is cancelled and rolled back; no session of migrate's stays", async () => {
  const m = {
    version: 1102,
    name: '1102_long_work',
    sql: 'create table mailer.scratch_1102 (id int);\nselect pg_sleep(600);',
  }
  const stopped = await migrateWithin3s(m)
  expect(stopped).toEqual({
    code: 'migration_deadline',
    message: expect.stringContaining(
      'passed during migration 1102_long_work, which was rolled back: nothing of it is applied',
    ),
  })
  const { rows } = await adminQuery(
    t.url,
    `select to_regclass('mailer.scratch_1102') is null as gone,
            (select count(*)::int from mailer.schema_migrations where version = 1102) as recorded`,
  )
  expect(rows).toEqual([{ gone: true, recorded: 0 }])
  // Its session ended with it: the server notices the close a moment later.
  await pollUntil(async () => ((await adminQuery(t.url, OURS)).rows[0].n === 0 ? true : undefined))
})

test('an index built outside a transaction, stopped at the deadline: the INVALID index it left is named, and migrate again drops and rebuilds it', async () => {
  const m = {
    version: 1103,
    name: '1103_scratch_index',
    sql: [
      '--! no-transaction',
      'drop index concurrently if exists mailer.scratch_1103_idx;',
      '--! split',
      'create index concurrently scratch_1103_idx on mailer.email_outbox (id);',
    ].join('\n'),
  }
  // An open transaction with a snapshot: a concurrent index build waits for it to end.
  const old = new pg.Client({ connectionString: t.url, application_name: 'report-job' })
  await old.connect()
  await old.query('begin isolation level repeatable read')
  await old.query('select count(*) from mailer.email_outbox')
  let stopped: { code: string; message: string }
  try {
    stopped = await migrateWithin3s(m)
  } finally {
    await old.query('rollback').catch(() => {})
    await old.end()
  }
  expect(stopped).toEqual({
    code: 'migration_deadline',
    message: expect.stringContaining(
      'passed during migration 1103_scratch_index, which runs outside a transaction and is not recorded as applied: mailer indexes left INVALID: mailer.scratch_1103_idx (',
    ),
  })
  const valid = () =>
    adminQuery(
      t.url,
      `select (select count(*)::int from mailer.schema_migrations where version = 1103) as recorded,
              (select indisvalid from pg_index
                where indexrelid = to_regclass('mailer.scratch_1103_idx')) as valid`,
    ).then((r) => r.rows)
  expect(await valid()).toEqual([{ recorded: 0, valid: false }])
  const again = await migrate({ url: t.url, log: silentLogger, migrations: [...migrations, m] })
  expect(again.applied).toEqual([1103])
  expect(await valid()).toEqual([{ recorded: 1, valid: true }])
})

test('the deadline is the whole run’s: a database held past it names where it stopped, the next is not begun, exit 1', async () => {
  const other = await createTestDb()
  // Another migrator holding the migration lock of the first database (the key every binary shares).
  const migrator = new pg.Client({ connectionString: t.url })
  await migrator.connect()
  await migrator.query('select pg_advisory_lock($1)', [0x6d61696c6572])
  const out: string[] = []
  const err: string[] = []
  const lines: Record<string, unknown>[] = []
  try {
    const config = loadConfig(
      {
        MAILER_DATABASES: JSON.stringify([
          { name: 'rpm', url: t.url },
          { name: 'shop', url: other.url },
        ]),
        MIGRATE_DEADLINE_SECONDS: '5',
      },
      { role: 'api' },
    )
    const exit = await waitAtMost(
      systemClock,
      migrateEvery(
        config,
        createLogger('error', (l) => lines.push(JSON.parse(l))),
        { out: (line) => out.push(line), err: (line) => err.push(line) },
      ),
      ENDED_WITHIN_MS,
    ).catch(() => 'still running')
    const deadline = "migrate's deadline of 5 s (MIGRATE_DEADLINE_SECONDS, or --deadline) passed"
    expect({ exit, out, err }).toEqual({
      exit: EXIT.failure,
      out: [],
      err: [
        expect.stringContaining(
          `rpm: ${deadline} while waiting for another migrator's lock (another migrate run holds it): nothing was changed`,
        ),
        expect.stringContaining(`shop: ${deadline} before its turn: nothing was done to it`),
        'migrate: 2 of 2 databases failed (rpm, shop)',
      ],
    })
    expect(
      lines.filter((l) => l.msg === 'migration failed').map((l) => [l.db, l.code, l.exitCode]),
    ).toEqual([
      ['rpm', 'migration_deadline', EXIT.failure],
      ['shop', 'migration_deadline', EXIT.failure],
    ])
  } finally {
    await migrator.end()
    await other.drop()
  }
})

test('a hand lock on mailer.schema_migrations past the deadline: migrate stops while reading which migrations it has, names the holder, and changes nothing', async () => {
  // What readiness and serve's start name too: a LOCK TABLE, VACUUM FULL or ALTER TABLE left open.
  const m = { version: 1108, name: '1108_scratch', sql: 'create table mailer.scratch_1108 ();' }
  const { stopped, pid } = await migrateBehindHandLock('mailer.schema_migrations', m)
  expect(stopped).toEqual(
    stoppedNaming('while reading which migrations it has: nothing was changed', pid),
  )
  const { rows } = await adminQuery(
    t.url,
    `select to_regclass('mailer.scratch_1108') is null as gone,
            (select count(*)::int from mailer.schema_migrations where version = 1108) as recorded`,
  )
  expect(rows).toEqual([{ gone: true, recorded: 0 }])
})
