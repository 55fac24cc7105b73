// The settle queue when one row of a batch makes its statement fail: the others are recorded.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { silentLogger } from '../../src/log.ts'
import type { SettledRow, SettleItem } from '../../src/outbox/settle-item.ts'
import { createSettleQueue } from '../../src/outbox/settle-queue.ts'
import { sleepSteppedClock } from '../support/sleep-stepped-clock.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const itemOf = (id: string): SettleItem => ({
  id,
  token: `t${id}`,
  settlement: { kind: 'sent' },
  startedAt: null,
})
const rowOf = (id: string): SettledRow => ({ id, status: 'sent', outcome: 'sent', code: null })

// Postgres refuses a whole statement for one row's value (an index entry past its size, SQLSTATE
// 54000; a check, 23514): a batch given up for it had every send in it reclaimed and sent again.
test('a row whose value the statement refuses is given up alone; the rows settled beside it are recorded', async () => {
  const statements: string[][] = []
  const queue = createSettleQueue({
    clock: sleepSteppedClock().clock,
    log: silentLogger,
    giveUpAfterMs: 15_000,
    write: async (items) => {
      statements.push(items.map((i) => i.id))
      if (items.some((i) => i.id === '2')) {
        throw Object.assign(new Error('index row size 3016 exceeds btree version 4 maximum 2704'), {
          code: '54000',
        })
      }
      return items.map((i) => rowOf(i.id))
    },
  })
  // Pushed in one turn: one statement for the three.
  const answers = await Promise.all(['1', '2', '3'].map((id) => queue.push(itemOf(id))))
  expect(statements[0]).toEqual(['1', '2', '3'])
  expect(answers).toEqual([rowOf('1'), null, rowOf('3')])
  // Each of the others is recorded once; the refused row is retried alone until given up.
  expect(statements.filter((s) => s.includes('1'))).toEqual([['1', '2', '3'], ['1']])
  expect(statements.filter((s) => s.includes('3'))).toEqual([['1', '2', '3'], ['3']])
  expect(statements.slice(1).every((s) => s.length === 1)).toBe(true)
})

// Retried in line, the refused row held every outcome behind it for the whole of giveUpAfterMs:
// sends done but unrecorded, their slots held, for half a lease per refused row.
test('a refused row is retried aside: the outcomes queued behind it are recorded within its first backoff', async () => {
  const { c, clock } = sleepSteppedClock()
  const tries: number[] = []
  const withRow2: string[][] = []
  const answeredAt = new Map<string, number>()
  const queue = createSettleQueue({
    clock,
    log: silentLogger,
    giveUpAfterMs: 15_000,
    write: async (items) => {
      if (items.some((i) => i.id === '2')) {
        withRow2.push(items.map((i) => i.id))
        tries.push(c.mono)
        throw Object.assign(new Error('new row violates check constraint'), { code: '23514' })
      }
      return items.map((i) => rowOf(i.id))
    },
  })
  const push = (id: string) =>
    queue.push(itemOf(id)).then((row) => {
      answeredAt.set(id, c.mono)
      return row
    })
  const first = Promise.all(['1', '2', '3'].map(push))
  // Pushed once the first statement has failed: it waits behind whatever the queue is doing.
  while (tries.length === 0) await new Promise((r) => setImmediate(r))
  const later = push('4')
  expect(await first).toEqual([rowOf('1'), null, rowOf('3')])
  expect(await later).toEqual(rowOf('4'))
  // The clock moves only by sleeps: the others waited at most the refused row's first backoff (200 ms).
  expect(answeredAt.get('3')).toBeLessThanOrEqual(1_200)
  expect(answeredAt.get('4')).toBeLessThanOrEqual(1_200)
  // The refused row itself was still retried with backoff until giveUpAfterMs, then given up.
  expect(tries.length).toBeGreaterThan(3)
  expect(tries.at(-1)! - 1_000).toBeLessThanOrEqual(15_000)
  expect(answeredAt.get('2')).toBeGreaterThan(10_000)
  // Once refused, it is retried in a statement of its own, never again with rows beside it.
  expect(withRow2.slice(1)).toEqual(withRow2.slice(1).map(() => ['2']))
  await queue.idle()
})

test('a batch the database could not take at all is retried whole, not row by row', async () => {
  const statements: string[][] = []
  let down = 2
  const queue = createSettleQueue({
    clock: sleepSteppedClock().clock,
    log: silentLogger,
    giveUpAfterMs: 15_000,
    write: async (items) => {
      statements.push(items.map((i) => i.id))
      if (down-- > 0) {
        throw Object.assign(new Error('terminating connection due to administrator command'), {
          code: '57P01',
        })
      }
      return items.map((i) => rowOf(i.id))
    },
  })
  const answers = await Promise.all(['1', '2', '3'].map((id) => queue.push(itemOf(id))))
  expect(answers).toEqual([rowOf('1'), rowOf('2'), rowOf('3')])
  expect(statements).toEqual([
    ['1', '2', '3'],
    ['1', '2', '3'],
    ['1', '2', '3'],
  ])
})
