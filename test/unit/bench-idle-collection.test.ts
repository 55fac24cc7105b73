// The bench engine's collection once idle (bench/systems/idle-collection.ts, round 34): once per idle spell, never per send.
import { expect, test } from 'bun:test'
import { idleCollection } from '../../bench/systems/idle-collection.ts'

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
  try {
    idle.sent()
    await Bun.sleep(0)
    idle.sent()
    const last = performance.now()
    idle.sent()
    await until('the collection', () => calls.length > 0)
    expect(calls).toHaveLength(1)
    expect(calls[0]!.full).toBe(true)
    expect(calls[0]!.at - last).toBeGreaterThanOrEqual(39)
    // The next spell collects again.
    idle.sent()
    await until('the second collection', () => calls.length > 1)
    expect(calls).toHaveLength(2)
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
