// migrate's deadline against a migration that catches the cancel and goes on: the session is cut off (its backend terminated) and the run still ends, said, rolled back and unlocked.
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { Migration } from '../../src/db/migrations.ts'
import { EXIT, exitCodeOf } from '../../src/errors.ts'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { migrateWithin, outcome } from '../support/migrate-outcome.ts'
import { adminQuery } from '../support/postgres.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). A test waits
// up to ENDED_WITHIN_MS for migrate, then for the terminated backend to go.
setDefaultTimeout(60_000)

// A database each: the second test applies a migration the first one's list does not know.
const t = useTestDb({ freshEach: true })

/**
 * A plpgsql loop that catches query_canceled (pg_cancel_backend's): it keeps going for ever, or
 * `thenEnds`, ends without an error once the first cancel came (the statement was between two checks).
 */
const catchingCancels = (o: { thenEnds: boolean }) => `do $$
declare cancelled int := 0;
begin
  loop
    begin
      perform pg_sleep(0.05);
    exception when query_canceled then
      cancelled := cancelled + 1;
    end;
    exit when ${o.thenEnds ? 'cancelled > 0' : 'false'};
  end loop;
end
$$;`

/** The database's migrations, the sessions of migrate's left, and the advisory locks held. */
const state = () =>
  adminQuery(
    t.url,
    `select (select array_agg(version order by version) from mailer.schema_migrations) as versions,
            (select count(*)::int from pg_stat_activity
              where datname = current_database() and application_name = 'outbox-mailer:migrate') as sessions,
            (select count(*)::int from pg_locks l join pg_database d on d.oid = l.database
              where l.locktype = 'advisory' and d.datname = current_database()) as locks`,
  ).then((r) => r.rows[0] as { versions: number[]; sessions: number; locks: number })

test('a migration that ignores the cancel: its session is cut off 5 s later, migrate fails naming it, and nothing of it, no session, no lock is left', async () => {
  const m: Migration = {
    version: 1104,
    name: '1104_ignores_cancel',
    sql: `create table mailer.scratch_1104 (id int);\n${catchingCancels({ thenEnds: false })}`,
  }
  const before = await state()
  const run = migrateWithin(t.url, [m])
  const stopped = await outcome(run)
  expect(stopped).toEqual({
    code: 'migration_deadline',
    message: expect.stringContaining(
      "migrate's deadline of 3 s (MIGRATE_DEADLINE_SECONDS, or --deadline) passed during migration 1104_ignores_cancel, whose session was ended (the server rolls it back): nothing of it is applied",
    ),
  })
  expect(await run.then(() => EXIT.ok, exitCodeOf)).toBe(EXIT.failure)
  // The terminated backend rolls back and goes a moment after pg_terminate_backend answers.
  const after = await pollUntil(async () => {
    const s = await state()
    return s.sessions === 0 ? s : undefined
  })
  expect(after).toEqual({ versions: before.versions, sessions: 0, locks: 0 })
  const { rows } = await adminQuery(
    t.url,
    `select to_regclass('mailer.scratch_1104') is null as gone`,
  )
  expect(rows).toEqual([{ gone: true }])
})

test('a migration that catches the cancel and ends is applied; the next one is not begun, and the message says both', async () => {
  const first: Migration = {
    version: 1105,
    name: '1105_ends_after_cancel',
    sql: `create table mailer.scratch_1105 (id int);\n${catchingCancels({ thenEnds: true })}`,
  }
  const next: Migration = {
    version: 1106,
    name: '1106_not_begun',
    sql: 'create table mailer.scratch_1106 (id int);',
  }
  const before = await state()
  const stopped = await outcome(migrateWithin(t.url, [first, next]))
  expect(stopped).toEqual({
    code: 'migration_deadline',
    message: expect.stringContaining(
      "migrate's deadline of 3 s (MIGRATE_DEADLINE_SECONDS, or --deadline) passed before migration 1106_not_begun: it was not begun; this run applied 1105 before it",
    ),
  })
  const after = await pollUntil(async () => {
    const s = await state()
    return s.sessions === 0 ? s : undefined
  })
  expect(after).toEqual({ versions: [...before.versions, 1105], sessions: 0, locks: 0 })
  const { rows } = await adminQuery(
    t.url,
    `select to_regclass('mailer.scratch_1105') is not null as made,
            to_regclass('mailer.scratch_1106') is null as not_made`,
  )
  expect(rows).toEqual([{ made: true, not_made: true }])
})
