// The test database's reset between tests: every mailer table but what migrate made for good (its record, the database's id) is left empty, so no test leans on another's leftovers (a pause, a slot).
import { expect, setDefaultTimeout, test } from 'bun:test'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { untilLockWaits } from '../support/lock-waits.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()

test('reset empties every mailer table but schema_migrations and database_identity: a pause, a held slot and rows are gone; the id stays', async () => {
  const [{ id }] = (await t.pool.query('select id from mailer.database_identity')).rows
  await enqueue(t)
  await t.pool.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at) values ('sender@example.com', now() + interval '5 minutes')`,
  )
  await t.pool.query(
    `insert into mailer.send_slots (slot, holder, token, expires_at)
     values (1, 'w', gen_random_uuid(), now() + interval '1 minute')`,
  )
  await t.reset()
  // Listed from the catalog, so a table a later migration adds is held to it too.
  const tables = await t.pool.query<{ name: string }>(
    `select format('%I.%I', table_schema, table_name) as name from information_schema.tables
      where table_schema = 'mailer' and table_type = 'BASE TABLE'
        and table_name not in ('schema_migrations', 'database_identity')
      order by 1`,
  )
  expect(tables.rows.length).toBeGreaterThanOrEqual(6)
  const left: Record<string, number> = {}
  for (const { name } of tables.rows) {
    const r = await t.pool.query<{ n: number }>(`select count(*)::int as n from ${name}`)
    if (r.rows[0]!.n > 0) left[name] = r.rows[0]!.n
  }
  expect(left).toEqual({})
  const migrations = await t.pool.query('select count(*)::int as n from mailer.schema_migrations')
  expect(migrations.rows[0].n).toBeGreaterThan(0)
  // The database's own id (0048), as migrate made it: a table without its row sends nothing.
  expect((await t.pool.query('select id from mailer.database_identity')).rows).toEqual([{ id }])
})

test('a reset deadlocked with a statement a previous test left running goes again once that one is done, and empties the tables', async () => {
  const leftover = await t.pool.connect()
  try {
    // The leftover writes mailer.workers, then reads mailer.email_attempts, which the reset's
    // TRUNCATE locks before mailer.workers: each waits for the other.
    await leftover.query('begin')
    await leftover.query(
      `insert into mailer.workers (id, host, pid, version) values ('left', 'h', 1, 'v')`,
    )
    const reset = t.reset().then(
      () => null,
      (err: { code?: string }) => err.code ?? 'error',
    )
    await untilLockWaits(t.pool)
    // The deadlock's victim: the TRUNCATE, which waited first (or, under load, the leftover).
    await leftover.query('select count(*) from mailer.email_attempts').catch(() => {})
    await leftover.query('rollback')
    const failed = await reset
    const rows = await t.pool.query<{ n: number }>('select count(*)::int as n from mailer.workers')
    expect({ failed, workers: rows.rows[0]!.n }).toEqual({ failed: null, workers: 0 })
  } finally {
    leftover.release()
  }
})
