// migrate beside a running worker whose transaction locks the same tables in the other order: a deadlock Postgres breaks by aborting the migration is not a failed release.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { migrate } from '../../src/db/migrate.ts'
import { migrations } from '../../src/db/migrations.ts'
import { silentLogger } from '../../src/log.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'

setDefaultTimeout(30_000)

let t: TestDb
beforeAll(async () => {
  t = await createTestDb()
})
afterAll(async () => {
  await t.drop()
})

test("a migration Postgres aborts to break a deadlock with an old release's worker is tried again: migrate (Fly's release command) succeeds", async () => {
  // As 0075: mailbox_pacing held by an index build (SHARE), then the outbox's trigger dropped
  // (ACCESS EXCLUSIVE) and created again, in one transaction.
  const pacingThenOutbox = {
    version: 1000,
    name: '1000_pacing_then_outbox',
    sql: [
      'create index mailbox_pacing_next_at_idx on mailer.mailbox_pacing (next_at);',
      'drop trigger if exists email_outbox_probe_due_insert on mailer.email_outbox;',
      'create trigger email_outbox_probe_due_insert after insert on mailer.email_outbox',
      "  for each row when (new.status = 'pending' and new.sender_key is null and new.send_at > now())",
      '  execute function mailer.probe_due_follows_rows();',
    ].join('\n'),
  }
  // An old release's worker, as its last check and turn: the outbox locked (ROW SHARE, a SELECT …
  // FOR UPDATE), then MAIL_FROM's pacing row written. Its own deadlock check comes late, so the
  // one that breaks the cycle is migrate's (the one Postgres aborts is the one that checks).
  const worker = new pg.Client({ connectionString: t.url })
  await worker.connect()
  try {
    await worker.query('begin')
    await worker.query(`set local deadlock_timeout = '20s'`)
    await worker.query('select id from mailer.email_outbox for update')
    const migrated = migrate({
      url: t.url,
      log: silentLogger,
      migrations: [...migrations, pacingThenOutbox],
    }).then(
      (r) => r.applied,
      (e: Error) => e.message,
    )
    // migrate holds mailbox_pacing and waits for the outbox: this database's (another cloned from
    // the same template names its outbox by the same oid).
    await pollUntil(async () => {
      const r = await t.pool.query(
        `select 1 from pg_locks where relation = 'mailer.email_outbox'::regclass
            and database = (select oid from pg_database where datname = current_database())
            and mode = 'AccessExclusiveLock' and not granted`,
      )
      return r.rows.length > 0 ? true : undefined
    })
    // The worker's write of the pacing row waits for migrate's SHARE: the cycle is closed.
    await worker.query(`update mailer.mailbox_pacing set next_at = now() where mailbox = 'x'`)
    await worker.query('commit')
    expect(await migrated).toEqual([1000])
  } finally {
    await worker.end()
  }
})
