// The benchmark's drain budget (bench/budget.ts): full drains on time, shorter autovacuum waits a little late, cut caps only when far behind.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { drainBudget } from '../../bench/budget.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const options = {
  capMs: 10_000,
  quietMaxMs: 20_000,
  minCapMs: 3_000,
  minQuietMs: 1_000,
  overheadMs: 2_000,
  waitSlackMs: 5_000,
}
const full = { capMs: 10_000, quietMaxMs: 20_000, cut: false }

test('a run on time keeps every drain’s cap and autovacuum wait', () => {
  let now = 0
  const plan = ['slow', 'fast', 'slow', 'fast']
  // Four drains expected at 12 s each before any was seen: 48 s, inside the 60 s left.
  const b = drainBudget({ ...options, plan, deadline: 60_000, now: () => now })
  for (const key of plan) {
    expect(b.next(key)).toEqual(full)
    const took = key === 'slow' ? 12_000 : 1_000
    b.took(key, took)
    now += took
  }
  expect([b.cuts(), b.shortWaits()]).toEqual([0, 0])
})

test('a run a little late waits less for autovacuum and keeps its caps', () => {
  const b = drainBudget({ ...options, plan: ['a', 'b'], deadline: 20_000, now: () => 0 })
  // 24 s expected against 20 s: within the 5 s that shorter waits may make up.
  expect(b.next('a')).toEqual({ capMs: 10_000, quietMaxMs: 1_000, cut: false })
  expect([b.cuts(), b.shortWaits()]).toEqual([0, 1])
})

test('a run far behind cuts the caps of the drains left, never below the floor', () => {
  let now = 0
  const plan = ['slow', 'fast', 'slow', 'fast']
  const b = drainBudget({ ...options, plan, deadline: 30_000, now: () => now })
  // 48 s expected against 30 s: 18 s over, spread over four drains.
  expect(b.next('slow')).toEqual({ capMs: 5_500, quietMaxMs: 1_000, cut: true })
  b.took('slow', 8_000)
  now += 8_000
  // What a drain took (or an estimate given before any ran) is what the next of its kind is
  // expected to take: 1 + 8 + 1 s more fits in the 22 s left.
  b.took('fast', 1_000)
  expect(b.next('fast')).toEqual(full)
  now += 41_000
  expect(b.next('slow')).toEqual({ capMs: 3_000, quietMaxMs: 1_000, cut: true })
  expect([b.cuts(), b.shortWaits()]).toEqual([2, 0])
})
