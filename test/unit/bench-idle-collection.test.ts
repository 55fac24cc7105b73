// The bench engine's collection once idle (bench/systems/idle-collection.ts, round 34): once per idle spell, never per send.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { idleCollection } from '../../bench/systems/idle-collection.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

async function until(what: string, check: () => boolean, ms = 5_000) {
  const deadline = performance.now() + ms
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await Bun.sleep(5)
  }
}

test('sends in a row make one collection, a full one, once BENCH_IDLE_GC_MS has passed since the last', async () => {
  const calls: { full: boolean; at: number }[] = []
  const idle = idleCollection({ BENCH_IDLE_GC_MS: '40' }, (full) =>
    calls.push({ full, at: performance.now() }),
  )
  const sentAt: number[] = []
  // Read just before the engine's own reading: never later than it.
  const send = () => {
    sentAt.push(performance.now())
    idle.sent()
  }
  // Each collection came 40 ms after the send before it (39: a float's rounding). A machine that
  // stalled 40 ms between two sends made them two spells, each with its collection: the count is
  // of those after the last send.
  const since = (from: number) => calls.filter((c) => c.at > from)
  const eachCameIdle = () => {
    for (const c of calls) {
      const before = sentAt.filter((s) => s < c.at).at(-1)!
      expect(c.at - before).toBeGreaterThanOrEqual(39)
    }
  }
  try {
    send()
    await Bun.sleep(0)
    send()
    send()
    const last = sentAt.at(-1)!
    await until('the collection', () => since(last).length > 0)
    expect(since(last)).toHaveLength(1)
    expect(calls.every((c) => c.full)).toBe(true)
    eachCameIdle()
    // The next spell collects again.
    send()
    const next = sentAt.at(-1)!
    await until('the second collection', () => since(next).length > 0)
    expect(since(next)).toHaveLength(1)
    eachCameIdle()
  } finally {
    idle.stop()
  }
})

test('BENCH_IDLE_GC_KIND=eden asks for the asynchronous eden collection', async () => {
  const calls: boolean[] = []
  const idle = idleCollection({ BENCH_IDLE_GC_MS: '10', BENCH_IDLE_GC_KIND: 'eden' }, (full) =>
    calls.push(full),
  )
  try {
    idle.sent()
    await until('the collection', () => calls.length > 0)
    expect(calls).toEqual([false])
  } finally {
    idle.stop()
  }
})
