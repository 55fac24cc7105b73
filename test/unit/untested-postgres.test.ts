// untestedVersionWarning: check-config's warning for a Postgres older than the oldest version the suites ran on, and silence for the rest.
import { expect, setDefaultTimeout, test } from 'bun:test'
import {
  OLDEST_TESTED_POSTGRES,
  untestedVersionWarning,
} from '../../src/check-config/server-version.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

test('a server older than the oldest tested version is warned of, naming the database and both versions', () => {
  expect(OLDEST_TESTED_POSTGRES).toBe(15)
  expect(untestedVersionWarning('shop', 140023)).toBe(
    'warning: database "shop" runs PostgreSQL 14, older than 15, the oldest version outbox-mailer is tested on: upgrade it, or run the tests on it first (README, "Postgres versions")',
  )
  expect(untestedVersionWarning('shop', 90624)).toContain('PostgreSQL 9,')
})

test('15 to 18, and a newer server, are not warned of; nor an unreadable version number', () => {
  for (const num of [150018, 160014, 170010, 180001, 190000]) {
    expect(untestedVersionWarning('shop', num)).toBeNull()
  }
  expect(untestedVersionWarning('shop', Number.NaN)).toBeNull()
})
