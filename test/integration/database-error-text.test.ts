// What a command or readiness says of a server error that can quote a row's values (a raise, a data exception): its names, never the message; Postgres's own words for others stay.
import { expect, setDefaultTimeout, test } from 'bun:test'
import pg from 'pg'
import { describe as checkConfigDescribe } from '../../src/check-config/findings.ts'
import { migrate } from '../../src/db/migrate.ts'
import { migrations } from '../../src/db/migrations.ts'
import { describeError, describeStack } from '../../src/errors.ts'
import { createLogger } from '../../src/log.ts'
import { answeredProblem, listenerProblem } from '../../src/outbox/database-problem.ts'
import { errorOf } from '../../src/status/status-error.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { refuseQuotingRow } from '../support/row-quoting-trigger.ts'
import { startTransactionPooler } from '../support/transaction-pooler.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ freshEach: true })

/** The error a DBA's trigger raises on an update, quoting the row's recipient in message, DETAIL and HINT. */
async function raisedQuoting(address: string): Promise<unknown> {
  await enqueue(t, { to: address, subject: 'Hello', text: 'Hi there' })
  await refuseQuotingRow(t.pool, { event: 'update' })
  return t.pool.query(`update mailer.email_outbox set priority = priority`).then(
    () => null,
    (e: unknown) => e,
  )
}

test('a raise quoting the row is said by its names by describeError, status, check-config, readiness and the uncaught stack', async () => {
  const address = `raised-${crypto.randomUUID()}@example.com`
  const e = await raisedQuoting(address)
  const said = {
    describeError: describeError(e),
    stack: describeStack(e),
    status: errorOf(e, 5_000),
    checkConfig: checkConfigDescribe(e),
    answered: answeredProblem(e),
    listener: listenerProblem('down', e, 'LISTEN_DATABASE_URL'),
  }
  expect(JSON.stringify(said)).not.toContain(address)
  const names =
    "SQLSTATE P0042 (schema mailer, table email_outbox, constraint audit_hold, function mailer.quote_row(), routine exec_stmt_raise, message not shown: it can quote a row's values)"
  expect(said.describeError).toBe(names)
  expect(said.stack).toBe(names)
  expect(said.status).toEqual({ code: 'P0042', message: names })
  expect(said.checkConfig).toBe(names)
  expect(said.answered).toBe(names)
  expect(said.listener).toBe(`listener is down (LISTEN_DATABASE_URL: ${names})`)
})

test("a migration failing on a row's value (a cast a backfill makes) is said by its names, not the value", async () => {
  const address = `migrated-${crypto.randomUUID()}@example.com`
  await enqueue(t, { to: address, subject: 'Hello', text: 'Hi there' })
  const backfill = {
    version: 1001,
    name: '1001_backfill',
    sql: `update mailer.email_outbox set priority = (message -> 'to' -> 0 ->> 'address')::int;`,
  }
  const lines: string[] = []
  const failure = await migrate({
    url: t.url,
    log: createLogger('debug', (l) => lines.push(l)),
    migrations: [...migrations, backfill],
  }).then(
    () => 'migrated',
    (e: Error) => e.message,
  )
  expect(failure).not.toContain(address)
  expect(lines.filter((l) => l.includes(address))).toEqual([])
  // The routine is pg_strtoint32_safe on Postgres 16 and later, pg_strtoint32 on 15.
  expect(failure).toMatch(
    /^migration 1001_backfill failed: SQLSTATE 22P02 \(routine pg_strtoint32(_safe)?, message not shown/,
  )
})

test("Postgres's own words for an error that quotes no value (a relation missing) are said as they are", async () => {
  const e = await t.pool.query('select 1 from mailer.no_such_table').then(
    () => null,
    (err: unknown) => err,
  )
  expect(describeError(e)).toBe('relation "mailer.no_such_table" does not exist')
  expect(errorOf(e, 5_000)).toEqual({
    code: '42P01',
    message: 'relation "mailer.no_such_table" does not exist',
  })
})

test("a pooler's refusal (no routine: it saw no row) keeps its words", async () => {
  const pooler = await startTransactionPooler(t.url)
  const client = new pg.Client({ connectionString: pooler.url, statement_timeout: 1_000 })
  try {
    const e = await client.connect().then(
      () => null,
      (err: unknown) => err,
    )
    expect(describeError(e)).toBe('unsupported startup parameter: statement_timeout')
  } finally {
    await client.end().catch(() => {})
    await pooler.close()
  }
})
