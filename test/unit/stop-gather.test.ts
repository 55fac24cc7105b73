// A stop's gathering (stop-gather.ts) in the settle queue: the outcomes of the sends still running go in one write, and one that never comes holds the others only until none came for a moment.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { type Clock, monotonicNow, systemClock } from '../../src/clock.ts'
import { silentLogger } from '../../src/log.ts'
import { createSettleQueue } from '../../src/outbox/settle-queue.ts'
import {
  createStopGather,
  STOP_GATHER_MS,
  STOP_GATHER_QUIET_MS,
} from '../../src/outbox/stop-gather.ts'
import { sentItem } from '../support/sent-settle-item.ts'
import { sleepSteppedClock } from '../support/sleep-stepped-clock.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

function recordingQueue(clock = systemClock) {
  const writes: { ids: string[]; at: number }[] = []
  const gather = createStopGather(clock)
  const queue = createSettleQueue({
    write: async (items) => {
      writes.push({ ids: items.map((i) => i.id), at: monotonicNow(clock) })
      return items.map((i) => ({ id: i.id, status: 'sent', outcome: 'sent', code: null }))
    },
    clock,
    log: silentLogger,
    giveUpAfterMs: 60_000,
    gather,
  })
  return { writes, gather, queue }
}

test('during a stop, the outcomes of the sends still running go in one write once the last has come', async () => {
  const { writes, gather, queue } = recordingQueue()
  let toCome = 3
  gather.began(() => toCome > 0)
  const pushed = ['1', '2', '3'].map(async (id, i) => {
    // Each send ends a turn after the one before it, as a batch of sends answered apart does.
    for (let n = 0; n < i; n++) await new Promise((r) => setImmediate(r))
    toCome -= 1
    return queue.push(sentItem(id))
  })
  await Promise.all(pushed)
  await queue.idle()
  expect(writes.map((w) => w.ids)).toEqual([['1', '2', '3']])
})

test('before a stop, a write goes at once; during one, an outcome that never comes holds the others until none came for STOP_GATHER_QUIET_MS, no longer', async () => {
  const { c, clock } = sleepSteppedClock()
  const { writes, gather, queue } = recordingQueue(clock)
  await queue.push(sentItem('before'))
  gather.began(() => true)
  const from = c.mono
  await Promise.all([queue.push(sentItem('1')), queue.push(sentItem('2'))])
  expect(
    writes.map((w) => ({ ids: w.ids, waitedMs: w.at - (w.ids[0] === 'before' ? w.at : from) })),
  ).toEqual([
    { ids: ['before'], waitedMs: 0 },
    { ids: ['1', '2'], waitedMs: STOP_GATHER_QUIET_MS },
  ])
})

/** A clock that moves only when the test moves it, each wait ending once its time is reached. */
function clockMovedByHand() {
  let mono = 0
  const sleeps = new Set<{ until: number; end: () => void }>()
  const clock: Clock = {
    now: () => mono,
    monotonic: () => mono,
    sleep: (ms, signal) =>
      new Promise<void>((end) => {
        const s = { until: mono + ms, end }
        sleeps.add(s)
        signal?.addEventListener('abort', () => end(), { once: true })
      }),
  }
  return {
    clock,
    move(ms: number) {
      mono += ms
      for (const s of sleeps)
        if (s.until <= mono) {
          sleeps.delete(s)
          s.end()
        }
    },
  }
}

test('during a stop, items that keep coming each within STOP_GATHER_QUIET_MS hold a write STOP_GATHER_MS at most', async () => {
  const { clock, move } = clockMovedByHand()
  const gather = createStopGather(clock)
  gather.began(() => true)
  let done = false
  const waited = gather.wait().then(() => {
    done = true
  })
  const step = STOP_GATHER_QUIET_MS - 10
  const seen: { at: number; done: boolean }[] = []
  for (let at = step; at < STOP_GATHER_MS + step; at += step) {
    move(step)
    gather.added()
    for (let n = 0; n < 3; n++) await new Promise((r) => setImmediate(r))
    seen.push({ at, done })
  }
  // Written by the first step past the bound, none before it.
  expect(seen.filter((s) => s.done !== s.at >= STOP_GATHER_MS)).toEqual([])
  await waited
})
