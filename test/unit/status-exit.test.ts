// status's exit code: the worst database decides, unreachable before permission before schema before attention.
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { DatabaseReading } from '../../src/status/database-status.ts'
import { exitCodeOf, judge } from '../../src/status/status-report.ts'
import type { DatabaseStatus, Health } from '../../src/status/status-shape.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

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

test('a due row needs attention once it has waited longer than --max-pending-age, not at it', () => {
  const reading = (age: number): DatabaseReading => ({
    name: 'default',
    url: 'postgres://db/app',
    reachable: true,
    error: null,
    schema: null,
    readOnly: false,
    stats: {
      counts: { pending: 1, sending: 0, sent: 0, failed: 0, cancelled: 0 },
      oldestPendingAgeSeconds: age,
      heldBackPending: 0,
      pausedMailboxes: 0,
    },
    presence: null,
    failures: null,
    pauses: null,
    pacing: null,
    unread: [],
  })
  const judged = (age: number) =>
    judge(reading(age), { maxPendingAgeSeconds: 600, leaseSeconds: 60 }, (s) => s)
  expect([judged(600).health, judged(601).health]).toEqual(['ok', 'attention'])
  expect(judged(601).reasons).toEqual([
    'the oldest due pending row has waited 601 s (more than 600 s)',
  ])
})
