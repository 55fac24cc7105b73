// The chaos soak's slow-database proxies: which slot a burst slows, and when a stop counts as held by one.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { Background } from '../faults/chaos/background.ts'
import { startSlowDatabaseProxies } from '../faults/chaos/slow-database.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(10_000)

// Nothing connects: a proxy reaches its target only for a client's connection.
const TARGET = 'postgres://outbox@127.0.0.1:1/outbox'

test('a stop counts as held by a slow database only on the slowed slot, during a burst of a second or more (or its late bytes after)', async () => {
  const slow = await startSlowDatabaseProxies(TARGET, 3)
  const problems: string[] = []
  const background = new Background(problems)
  const notes: string[] = []
  try {
    expect(new Set([0, 1, 2].map((i) => slow.urlOf(i))).size).toBe(3)
    const before = performance.now()
    slow.burst(1, { everySlot: false, answerMs: 2_000, requestMs: 0, forMs: 20 }, background, (w) =>
      notes.push(w),
    )
    slow.burst(2, { everySlot: false, answerMs: 300, requestMs: 0, forMs: 20 }, background, (w) =>
      notes.push(w),
    )
    // The bursts' own ends, not a wait for an effect.
    await background.settled()
    const after = performance.now()
    expect(slow.slowedBetween(1, before, after)).toBe(true)
    // Its answers queued at the burst's end still arrive up to 2 s late.
    expect(slow.slowedBetween(1, after + 500, after + 600)).toBe(true)
    expect(slow.slowedBetween(1, after + 3_000, after + 4_000)).toBe(false)
    expect(slow.slowedBetween(0, before, after)).toBe(false)
    // 300 ms late: a stop's round trips fit in its bound.
    expect(slow.slowedBetween(2, before, after)).toBe(false)
    expect(slow.slowedBetween(1, before - 2_000, before - 1_000)).toBe(false)
    expect(notes).toEqual([
      'slow database slot 1: answers 2000 ms, statements 0 ms late for 20 ms',
      'slow database slot 2: answers 300 ms, statements 0 ms late for 20 ms',
    ])
    expect(problems).toEqual([])
  } finally {
    slow.close()
  }
})
