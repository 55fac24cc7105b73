// The benchmark's pickup windows (bench/latency.ts): commit → send start, from the same clock points for every system.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { latencyWindow, poolWindows } from '../../bench/latency.ts'
import type { BenchSystem, StartOptions } from '../../bench/systems/system.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/**
 * A system whose insert does `workMs` of its own work before it commits (as graphile-worker's
 * add_job does more than a plain insert), and whose worker starts each row `afterCommitMs` after
 * that commit. Nothing reaches a database.
 */
function slowInsertSystem(workMs: number, afterCommitMs: number): BenchSystem {
  let onStart: StartOptions['onStart']
  let left = 0
  return {
    name: 'slow insert',
    database: 'none',
    prepare: async () => {},
    reset: async () => {},
    insertBulk: async () => '0/0',
    async insertOne(key) {
      left++
      await Bun.sleep(workMs)
      const committedAt = performance.now()
      onStart?.(key, committedAt + afterCommitMs)
      left--
    },
    async start(o) {
      onStart = o.onStart
    },
    async stop() {
      onStart = undefined
    },
    remaining: async () => left,
  }
}

test('a pickup is timed from the commit, not from when the insert was issued', async () => {
  const w = await latencyWindow(slowInsertSystem(30, 2), {
    perSecond: 50,
    seconds: 0.1,
    concurrency: 1,
  })
  expect(w.missing).toBe(0)
  expect(w.latencies.length).toBe(5)
  // Each start came 2 ms after its commit, which the benchmark learns of no sooner than the
  // insert returns: at most 2 ms, however long the insert worked before it committed.
  for (const ms of w.latencies) expect(ms).toBeLessThanOrEqual(2)
})

test('rows never picked up count as slower than every row that was, not as absent', () => {
  // 3 of 10 rows picked up: the median and beyond lie among the 7 still waiting.
  const r = poolWindows([{ latencies: [1, 2, 3], missing: 7 }])
  expect(r.samples).toBe(3)
  expect(r.missing).toBe(7)
  expect([r.p50, r.p95, r.p99, r.max, r.roundP50s]).toEqual([null, null, null, null, [null]])
  // With every row picked up, the figures are the rows'.
  const all = poolWindows([{ latencies: [3, 1, 2], missing: 0 }])
  expect([all.p50, all.max, all.roundP50s]).toEqual([2, 3, [2]])
})
