// status's exit code: the worst database decides, unreachable before permission before schema before attention.
import { expect, test } from 'bun:test'
import { type DatabaseStatus, exitCodeOf, type Health } from '../../src/status/status-report.ts'

const db = (health: Health) => ({ health }) as DatabaseStatus

test('each health has its exit code, and the worst database decides: 4, then 6, then 3, then 5', () => {
  expect(
    ['ok', 'attention', 'schema', 'permission', 'unreachable'].map((h) =>
      exitCodeOf([db(h as Health)]),
    ),
  ).toEqual([0, 5, 3, 6, 4])
  expect(exitCodeOf([db('permission'), db('unreachable')])).toBe(4)
  expect(exitCodeOf([db('schema'), db('permission'), db('attention')])).toBe(6)
  expect(exitCodeOf([db('attention'), db('schema')])).toBe(3)
  expect(exitCodeOf([])).toBe(0)
})
