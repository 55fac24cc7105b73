// The settled counts cache behind /metrics: one count per interval, a scrape's bounded wait, a failed count dropped.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { createSettledCountsCache } from '../../src/api/settled-counts-cache.ts'
import type { Clock } from '../../src/clock.ts'
import type { SettledCounts } from '../../src/outbox/settled-counts.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

// A count the test finishes by hand; the clock's sleep is the scrape's wait running out at once.
function harness(retrySoon?: (error: unknown) => boolean) {
  let now = 0
  const started: { resolve: (c: SettledCounts) => void; reject: (e: Error) => void }[] = []
  const clock: Clock = { now: () => now, sleep: () => Promise.resolve() }
  const cache = createSettledCountsCache({
    count: () => new Promise((resolve, reject) => started.push({ resolve, reject })),
    clock,
    refreshMs: 60_000,
    ...(retrySoon ? { retrySoon } : {}),
  })
  return {
    cache,
    started,
    advance: (ms: number) => {
      now += ms
    },
  }
}
const counts = (sent: number): SettledCounts => ({ sent, failed: 0, cancelled: 0 })

describe('settled counts cache', () => {
  test('counts once per interval, and a scrape never waits longer than it is allowed', async () => {
    const h = harness()
    // The first count is slow: the scrape gives up waiting and has nothing yet.
    expect(await h.cache.get(10)).toBeNull()
    expect(h.started).toHaveLength(1)
    // Scrapes while it runs start no second count.
    expect(await h.cache.get(10)).toBeNull()
    expect(h.started).toHaveLength(1)
    h.started[0]!.resolve(counts(5))
    expect(await h.cache.get(10)).toEqual(counts(5))
    h.advance(59_999)
    expect(await h.cache.get(10)).toEqual(counts(5))
    expect(h.started).toHaveLength(1)
    // Due again: while the new count runs, scrapes get the previous counts.
    h.advance(1)
    expect(await h.cache.get(10)).toEqual(counts(5))
    expect(h.started).toHaveLength(2)
    h.started[1]!.resolve(counts(7))
    expect(await h.cache.get(10)).toEqual(counts(7))
  })

  test('a failed count drops the numbers until a count succeeds', async () => {
    const h = harness()
    const first = h.cache.get(10)
    h.started[0]!.resolve(counts(3))
    expect(await first).toEqual(counts(3))
    h.advance(60_000)
    const second = h.cache.get(10)
    h.started[1]!.reject(new Error('statement timeout'))
    await second
    expect(await h.cache.get(10)).toBeNull()
    // Not retried before the interval is over: a count that timed out would time out again.
    expect(h.started).toHaveLength(2)
    h.advance(60_000)
    const third = h.cache.get(10)
    h.started[2]!.resolve(counts(4))
    await third
    expect(await h.cache.get(10)).toEqual(counts(4))
  })

  test('a count the database missed goes again at the next scrape; one that timed out waits', async () => {
    const h = harness((e) => (e as Error).message === 'connection refused')
    const first = h.cache.get(10)
    h.started[0]!.reject(new Error('connection refused'))
    await first
    const second = h.cache.get(10)
    expect(h.started).toHaveLength(2)
    h.started[1]!.reject(new Error('statement timeout'))
    await second
    expect(await h.cache.get(10)).toBeNull()
    expect(h.started).toHaveLength(2)
  })
})

test('a wall clock stepped back does not keep the counts an interval plus the step', async () => {
  const c = { wall: 1_750_000_000_000, mono: 0 }
  const started: ((x: SettledCounts) => void)[] = []
  const cache = createSettledCountsCache({
    count: () => new Promise((resolve) => started.push(resolve)),
    clock: { now: () => c.wall, monotonic: () => c.mono, sleep: () => Promise.resolve() },
    refreshMs: 60_000,
  })
  const first = cache.get(10)
  started[0]!(counts(5))
  expect(await first).toEqual(counts(5))
  // An hour back on the wall clock, a minute on: the next scrape recounts, not an hour later.
  c.wall -= 3_600_000
  c.mono += 60_000
  await cache.get(10)
  expect(started).toHaveLength(2)
})
