// The benchmark's drain budget (bench/budget.ts): full caps while the run is on time, cuts spread and bounded when not.
import { expect, test } from 'bun:test'
import { drainBudget } from '../../bench/budget.ts'

const options = {
  capMs: 10_000,
  quietMaxMs: 20_000,
  minCapMs: 3_000,
  minQuietMs: 1_000,
  overheadMs: 2_000,
}

test('a run on time keeps every drain’s cap and autovacuum wait', () => {
  let now = 0
  const plan = ['slow', 'fast', 'slow', 'fast']
  // Four drains expected at 12 s each before any was seen: 48 s, inside the 60 s left.
  const b = drainBudget({ ...options, plan, deadline: 60_000, now: () => now })
  for (const key of plan) {
    expect(b.next(key)).toEqual({ capMs: 10_000, quietMaxMs: 20_000, cut: false })
    const took = key === 'slow' ? 12_000 : 1_000
    b.took(key, took)
    now += took
  }
  expect(b.cuts()).toBe(0)
})

test('a run behind its budget cuts the drains left, never below the floor', () => {
  let now = 0
  const plan = ['slow', 'fast', 'slow', 'fast']
  const b = drainBudget({ ...options, plan, deadline: 30_000, now: () => now })
  // 48 s expected against 30 s: 18 s over, spread over four drains.
  expect(b.next('slow')).toEqual({ capMs: 5_500, quietMaxMs: 1_000, cut: true })
  b.took('slow', 8_000)
  now += 8_000
  // What the drains took is what the rest is expected to take: 8 + 1 + 8 + 1 fits in 30 s.
  b.took('fast', 1_000)
  expect(b.next('fast').cut).toBe(false)
  now += 41_000
  // Far behind now: the cut stops at the floor.
  expect(b.next('slow')).toEqual({ capMs: 3_000, quietMaxMs: 1_000, cut: true })
  expect(b.cuts()).toBe(2)
})
