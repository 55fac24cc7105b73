// The paired drains' order (bench/drain-order.ts): every system once per rep, and the two engines of a pair on equal terms.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { drainOrder } from '../../bench/drain-order.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const systems = ['graphile', 'ours', 'other'] as const

test('every system drains once per rep and concurrency', () => {
  const order = drainOrder(systems, 3, [10, 50], ['ours', 'other'])
  for (let rep = 0; rep < 3; rep++) {
    for (const c of [10, 50]) {
      const turn = order.filter((t) => t.rep === rep && t.concurrency === c).map((t) => t.system)
      expect([...turn].sort()).toEqual([...systems].sort())
    }
  }
})

test('the two engines of a pair go first equally often and follow the same systems', () => {
  const pair = ['ours', 'other'] as const
  const order = drainOrder(systems, 4, [10, 50], pair)
  // What drained just before each of the pair's drains (the first drain follows the warm-ups), its
  // partner named as such.
  const before = (side: string) =>
    order
      .slice(1)
      .map((t, i) => ({ t, prev: order[i]!.system }))
      .filter(({ t }) => t.system === side)
      .map(({ prev }) => (pair.includes(prev as never) ? 'partner' : prev))
      .sort()
  expect(before('other')).toEqual(before('ours'))
  for (const c of [10, 50]) {
    const firsts = order
      .filter((t) => t.concurrency === c && pair.includes(t.system as never))
      .filter((_, i) => i % 2 === 0)
      .map((t) => t.system)
    expect(firsts.filter((s) => s === 'ours')).toHaveLength(2)
  }
})
