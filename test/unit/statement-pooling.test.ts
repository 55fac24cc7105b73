// refusesTransactions: PgBouncer's statement-mode refusal told from its other 08P01s and from a server's errors, by the real error's SQLSTATE and words.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { refusesTransactions } from '../../src/db/statement-pooling.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

// As pg hands it over from PgBouncer 1.18 (pool_mode = statement) at a BEGIN.
const pgbouncer = (message: string) =>
  Object.assign(new Error(message), { code: '08P01', severity: 'FATAL' })

test('the statement-mode refusal, and only it', () => {
  expect(
    [
      pgbouncer('transaction blocks not allowed in statement pooling mode'),
      pgbouncer('unsupported startup parameter: statement_timeout'),
      Object.assign(new Error('transaction blocks not allowed in statement pooling mode'), {
        code: '25001',
      }),
      new Error('Connection terminated unexpectedly'),
      null,
    ].map(refusesTransactions),
  ).toEqual([true, false, false, false, false])
})
