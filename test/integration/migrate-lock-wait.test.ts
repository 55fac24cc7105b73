// migrate beside a long transaction that holds a table a migration must lock: the wait gives up at lock_timeout, names the session in the way, and is tried again within Fly's release window.
import { afterEach, beforeEach, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { migrate } from '../../src/db/migrate.ts'
import { migrations } from '../../src/db/migrations.ts'
import { createLogger } from '../../src/log.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'

setDefaultTimeout(30_000)

// A database each: a migration a test applied is one the next test's binary does not know.
let t: TestDb
beforeEach(async () => {
  t = await createTestDb()
})
afterEach(async () => {
  await t.drop()
})

/** A migration that needs the outbox's ACCESS EXCLUSIVE lock; `outside`: marked no-transaction. */
const alterOutbox = (version: number, outside: boolean) => ({
  version,
  name: `${version}_alter_outbox`,
  sql: [
    ...(outside ? ['--! no-transaction'] : []),
    `alter table mailer.email_outbox add column if not exists scratch_${version} int;`,
  ].join('\n'),
})

/** A session of an application's, in a transaction that read the outbox (ACCESS SHARE) and stays open. */
async function longReader(): Promise<{ pid: number; end: () => Promise<void> }> {
  const c = new pg.Client({ connectionString: t.url, application_name: 'report-job' })
  await c.connect()
  await c.query('begin')
  await c.query('select count(*) from mailer.email_outbox')
  const { rows } = await c.query<{ pid: number }>('select pg_backend_pid() as pid')
  return {
    pid: rows[0]!.pid,
    end: async () => {
      await c.query('rollback').catch(() => {})
      await c.end()
    },
  }
}

for (const outside of [false, true]) {
  test(`a migration${outside ? ' run outside a transaction' : ''} that met lock_timeout behind a long transaction is tried again once it ended, the holder named in the warning`, async () => {
    const lines: Record<string, unknown>[] = []
    const log = createLogger('debug', (l) => lines.push(JSON.parse(l)))
    const m = alterOutbox(outside ? 1002 : 1001, outside)
    const holder = await longReader()
    try {
      const migrated = migrate({
        url: t.url,
        log,
        lockTimeoutMs: 300,
        migrations: [...migrations, m],
      }).then(
        (r) => r.applied,
        (e: Error) => e.message,
      )
      // Whichever comes first: the warning of a wait given up (and tried again), or migrate's end.
      const first = await Promise.race([
        migrated.then((ended) => ({ ended })),
        pollUntil(
          async () =>
            lines.find((l) => l.msg === 'a migration waited past lock_timeout; running it again'),
          20_000,
        ).then((warned) => ({ warned })),
      ])
      expect(first).toEqual({
        warned: expect.objectContaining({
          version: m.version,
          attempt: 1,
          holders: [expect.objectContaining({ pid: holder.pid, applicationName: 'report-job' })],
        }),
      })
      await holder.end()
      expect(await migrated).toEqual([m.version])
    } finally {
      await holder.end()
    }
  })
}

test('a transaction that never ends: migrate fails after its tries, naming the session that holds the lock', async () => {
  const holder = await longReader()
  try {
    const failure = await migrate({
      url: t.url,
      log: createLogger('error', () => {}),
      lockTimeoutMs: 100,
      migrations: [...migrations, alterOutbox(1003, false)],
    }).then(
      () => 'migrated',
      (e: Error) => e.message,
    )
    expect(failure).toContain(
      'migration 1003_alter_outbox failed: canceling statement due to lock timeout',
    )
    expect(failure).toContain(`pid ${holder.pid} (report-job`)
  } finally {
    await holder.end()
  }
})

test('the waits a run gives up are counted for the whole run, not each migration: a release of two migrations that wait stays within the three waits of Fly’s window', async () => {
  const lines: Record<string, unknown>[] = []
  const log = createLogger('debug', (l) => lines.push(JSON.parse(l)))
  const onOutbox = await longReader()
  // Another session holding the pacing table, which the release's second migration alters.
  const onPacing = new pg.Client({ connectionString: t.url, application_name: 'report-job' })
  await onPacing.connect()
  await onPacing.query('begin')
  await onPacing.query('select count(*) from mailer.mailbox_pacing')
  const warned = () =>
    lines
      .filter((l) => l.msg === 'a migration waited past lock_timeout; running it again')
      .map((l) => [l.version, l.attempt])
  try {
    const migrated = migrate({
      url: t.url,
      log,
      // Long enough for the first holder's end to come within the second try's wait.
      lockTimeoutMs: 1_000,
      migrations: [
        ...migrations,
        alterOutbox(1004, false),
        {
          version: 1005,
          name: '1005_alter_pacing',
          sql: 'alter table mailer.mailbox_pacing add column if not exists scratch_1005 int;',
        },
      ],
    }).then(
      () => 'migrated',
      (e: Error) => e.message,
    )
    await pollUntil(async () => (warned().length > 0 ? true : undefined), 20_000)
    await onOutbox.end()
    const failure = await migrated
    expect(failure).toContain('migration 1005_alter_pacing failed')
    expect(warned()).toEqual([
      [1004, 1],
      [1005, 1],
    ])
  } finally {
    await onOutbox.end()
    await onPacing.end()
  }
})
