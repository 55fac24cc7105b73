// The suite's invalid-Date guard: a query given an invalid Date, alone or in an array, is caught.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { useTestDb } from '../support/db.ts'
import { takeInvalidDateQueries } from '../support/invalid-date-guard.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()

test('a query given an invalid Date, alone or in an array, is recorded with its text and caller; Postgres cannot read it either', async () => {
  // pg@8 sends it as `0NaN-NaN-…` (Postgres refuses the text), pg@9 throws before sending.
  await expect(
    t.pool.query('select $1::timestamptz as t', [new Date(Number.NaN)]),
  ).rejects.toThrow()
  await expect(
    t.pool.query('select $1::timestamptz[] as t', [[new Date(0), new Date('not a date')]]),
  ).rejects.toThrow()
  const found = takeInvalidDateQueries()
  expect(found.map((f) => f.split('\n')[0])).toEqual([
    'invalid Date among the values of: select $1::timestamptz as t',
    'invalid Date among the values of: select $1::timestamptz[] as t',
  ])
  expect(found[0]).toContain('invalid-date-guard.test.ts')
})

test('valid Dates, in a query config too, are not', async () => {
  const at = new Date(Date.UTC(2030, 0, 1))
  const { rows } = await t.pool.query<{ t: Date }>({
    text: 'select $1::timestamptz as t',
    values: [at],
  })
  expect(rows[0]!.t.getTime()).toBe(at.getTime())
  await t.pool.query('select $1::timestamptz[] as t', [[at, new Date(0)]])
  expect(takeInvalidDateQueries()).toEqual([])
})
