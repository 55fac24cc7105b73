// The start queue: last checks before a send batched into one statement, at most 500 rows, failures kept to theirs.
import { describe, expect, test } from 'bun:test'
import { createStartQueue } from '../../src/outbox/start-queue.ts'
import type { StartResult } from '../../src/outbox/start-send.ts'
import { pollUntil } from '../support/events.ts'

const lease = (id: string) => ({ id, token: `t-${id}` })

// A stand-in for the statement: records each call's ids and waits until the test lets it finish.
function fakeStatement() {
  const calls: { ids: string[]; finish: (r: StartResult | Error) => void }[] = []
  const run = (leases: readonly { id: string }[]) =>
    new Promise<StartResult>((resolve, reject) => {
      calls.push({
        ids: leases.map((l) => l.id),
        finish: (r) => (r instanceof Error ? reject(r) : resolve(r)),
      })
    })
  return { calls, run }
}

// The queue sends its next statement once the previous one's callers have been answered.
const statements = (s: ReturnType<typeof fakeStatement>, n: number) =>
  pollUntil(async () => (s.calls.length >= n ? true : undefined), 2_000, 1)

const allStarted = (ids: string[]): StartResult => ({
  started: new Set(ids),
  cancelled: new Set(),
  expired: new Set(),
  lost: new Set(),
  paused: new Map(),
  busy: new Set(),
})

describe('the start queue', () => {
  test('a check goes out at once; checks asked for meanwhile share the next statement', async () => {
    const s = fakeStatement()
    const start = createStartQueue(s.run)
    const first = start([lease('1')])
    expect(s.calls.map((c) => c.ids)).toEqual([['1']])
    const second = start([lease('2')])
    const third = start([lease('3'), lease('4')])
    expect(s.calls.length).toBe(1)
    s.calls[0]!.finish(allStarted(['1']))
    expect((await first).started.has('1')).toBe(true)
    await statements(s, 2)
    expect(s.calls.map((c) => c.ids)).toEqual([['1'], ['2', '3', '4']])
    s.calls[1]!.finish(allStarted(['2', '3', '4']))
    expect([...(await second).started]).toEqual(['2', '3', '4'])
    expect((await third).started.has('4')).toBe(true)
    // Idle again: the next check goes out at once, alone.
    const fourth = start([lease('5')])
    expect(s.calls.at(-1)!.ids).toEqual(['5'])
    s.calls.at(-1)!.finish(allStarted(['5']))
    await fourth
  })

  test('a failed statement fails the checks in it, not those in the next one', async () => {
    const s = fakeStatement()
    const start = createStartQueue(s.run)
    const first = start([lease('1')])
    const second = start([lease('2')])
    s.calls[0]!.finish(new Error('connection lost'))
    await expect(first).rejects.toThrow('connection lost')
    await statements(s, 2)
    s.calls[1]!.finish(allStarted(['2']))
    expect((await second).started.has('2')).toBe(true)
  })

  test('one statement checks at most 500 rows; a larger ask still goes whole', async () => {
    const s = fakeStatement()
    const start = createStartQueue(s.run)
    const ids = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => lease(`${from + i}`))
    const busy = start([lease('0')])
    const asks = [start(ids(1, 300)), start(ids(301, 300)), start(ids(601, 700))]
    s.calls[0]!.finish(allStarted(['0']))
    await busy
    for (let i = 1; i <= 3; i++) {
      await statements(s, i + 1)
      s.calls[i]!.finish(allStarted(s.calls[i]!.ids))
    }
    await Promise.all(asks)
    expect(s.calls.map((c) => c.ids.length)).toEqual([1, 300, 300, 700])
  })
})
