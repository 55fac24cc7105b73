// The start queue: last checks before a send batched into one statement, at most 500 rows, failures kept to theirs.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import type { Clock } from '../../src/clock.ts'
import { createStartQueue } from '../../src/outbox/start-queue.ts'
import type { StartResult } from '../../src/outbox/start-send.ts'
import { pollUntil } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

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
  pacingMs: null,
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

  test('a statement slow to answer tells the checks in it and behind it, once each, and a check asked for meanwhile at once; a quick one tells none', async () => {
    const s = fakeStatement()
    // A clock whose sleeps end when the test says (or on their abort).
    const sleeps: (() => void)[] = []
    const clock: Clock = {
      now: () => 0,
      sleep: (_ms, signal) =>
        new Promise<void>((done) => {
          sleeps.push(done)
          signal?.addEventListener('abort', () => done(), { once: true })
        }),
    }
    const fire = () => {
      for (const done of sleeps.splice(0)) done()
    }
    const start = createStartQueue(s.run, { clock, slowMs: 1_000 })
    const told: string[] = []
    const slow = (id: string) => () => told.push(id)
    const first = start([lease('1')], slow('1'))
    const second = start([lease('2')], slow('2'))
    expect(told).toEqual([])
    fire()
    await pollUntil(async () => (told.length === 2 ? true : undefined), 2_000, 1)
    expect(told).toEqual(['1', '2'])
    // Asked while the slow statement still runs: it waits behind it, and is told so at once.
    const third = start([lease('3')], slow('3'))
    expect(told).toEqual(['1', '2', '3'])
    s.calls[0]!.finish(allStarted(['1']))
    await first
    await statements(s, 2)
    // The next statement is slow too: each check was told already.
    fire()
    s.calls[1]!.finish(allStarted(['2', '3']))
    await Promise.all([second, third])
    expect(told).toEqual(['1', '2', '3'])
    // Answered before its timer: nobody is told, then or after.
    const fourth = start([lease('4')], slow('4'))
    await statements(s, 3)
    s.calls[2]!.finish(allStarted(['4']))
    await fourth
    fire()
    const fifth = start([lease('5')], slow('5'))
    await statements(s, 4)
    s.calls[3]!.finish(allStarted(['5']))
    await fifth
    await new Promise((r) => setImmediate(r))
    expect(told).toEqual(['1', '2', '3'])
  })
})
