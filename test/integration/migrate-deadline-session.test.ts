// migrate's deadline where a session stops answering (the connect, the own-session check's second session, migrate's own once its migration was cancelled): the run still ends at it, saying where.
import { afterEach, beforeEach, expect, setDefaultTimeout, test } from 'bun:test'
import { useTestDb } from '../support/db.ts'
import { migrateWithin, outcome } from '../support/migrate-outcome.ts'
import { type SilencingProxy, startSilencingProxy } from '../support/silencing-proxy.ts'
import { startTransactionPooler } from '../support/transaction-pooler.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). A test waits
// up to ENDED_WITHIN_MS for migrate.
setDefaultTimeout(60_000)

// Up to date, and left so by every test: one database for the file, a proxy before it each.
const t = useTestDb()
let proxy: SilencingProxy
beforeEach(async () => {
  proxy = await startSilencingProxy(t.url)
})
afterEach(() => {
  proxy.close()
})

const DEADLINE = "migrate's deadline of 3 s (MIGRATE_DEADLINE_SECONDS, or --deadline) passed"

test("the own-session check's second session silent past the deadline: migrate stops there, nothing changed", async () => {
  // The probe's notification goes out on a second session; only it sends pg_notify. Silent, it
  // waits out the check's 5 s bound, past the deadline of 3 s, and the database is up to date.
  proxy.silenceOnceAt('pg_notify')
  const stopped = await outcome(migrateWithin(proxy.url, []))
  expect(stopped).toEqual({
    code: 'migration_deadline',
    message: expect.stringContaining(`${DEADLINE} while checking its session: nothing was changed`),
  })
})

test("the own-session check's wait for its notification ends at the deadline too: through a transaction pooler, the deadline's stop, not the verdict 5 s later", async () => {
  // The pooler drops the notification (no transaction of the client runs when it comes), so the
  // check waits its 5 s for it; the deadline of 3 s comes first. The next run, begun in time, is
  // refused as a pooler (migrate.test.ts).
  const pooler = await startTransactionPooler(t.url, 1)
  let stopped: { code: string; message: string }
  try {
    stopped = await outcome(migrateWithin(pooler.url, []))
  } finally {
    await pooler.close()
  }
  expect(stopped).toEqual({
    code: 'migration_deadline',
    message: expect.stringContaining(`${DEADLINE} while checking its session: nothing was changed`),
  })
})

test('a database that accepts the connection and never answers: the connect ends at the deadline, said as such, not as its own 10 s bound', async () => {
  proxy.blackhole()
  const stopped = await outcome(migrateWithin(proxy.url, []))
  expect(stopped).toEqual({
    code: 'migration_deadline',
    message: expect.stringContaining(`${DEADLINE} while connecting: nothing was done to it`),
  })
})

test('a session that goes silent once the deadline stopped its migration: migrate still ends, the migration named as rolled back', async () => {
  // The cancel ends the sleep; then the read of the sessions in the way (only it aggregates locks
  // with array_agg(format(…))) goes unanswered, as after a network partition. The read gives up;
  // giving the migration lock back and ending the session must not wait for ever either.
  proxy.silenceOnceAt('array_agg(format(')
  const m = { version: 1107, name: '1107_long_work', sql: 'select pg_sleep(600);' }
  const stopped = await outcome(migrateWithin(proxy.url, [m]))
  expect(stopped).toEqual({
    code: 'migration_deadline',
    message: expect.stringContaining(
      `${DEADLINE} during migration 1107_long_work, which was rolled back: nothing of it is applied`,
    ),
  })
})
