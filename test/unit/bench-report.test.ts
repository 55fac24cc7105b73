// The benchmark's table (bench/report.ts): figures that the targets compare must show their difference.
import { expect, setDefaultTimeout, test } from 'bun:test'
import type { DrainRun } from '../../bench/drain.ts'
import { type Results, table } from '../../bench/report.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/** A drain of 20,000 rows that cost `statements` top-level statements. */
const drain = (statements: number) =>
  ({ rows: 20_000, complete: true, statementsPerRow: statements / 20_000 }) as DrainRun

const results = (systems: [string, number][]) =>
  ({
    parameters: {},
    binary: { readyMs: [] },
    systems: systems.map(([name, statements]) => ({
      name,
      drain: { c10: [drain(statements)], c50: [drain(statements)] },
      latency: null,
      idle: null,
    })),
  }) as unknown as Results

test('statements per row tell 82 statements per 20,000 rows from 81', () => {
  const lines = table(
    results([
      ['ours', 82],
      ['theirs', 81],
    ]),
  ).split('\n')
  const column = lines[0]!.split(' | ').indexOf('stmts/row c10 · c50')
  const cell = (name: string) => lines.find((l) => l.startsWith(`| ${name} `))!.split(' | ')[column]
  expect(cell('ours')).not.toBe(cell('theirs'))
  expect(cell('ours')).toBe('0.00410 · 0.00410')
  expect(cell('theirs')).toBe('0.00405 · 0.00405')
})
