// Pickup latency: rows committed one at a time at a steady rate; commit → send (handler) start, in rounds.
import { percentile } from './percentiles.ts'
import type { BenchSystem } from './systems/system.ts'

export interface LatencyResult {
  /** Pooled over every round. */
  samples: number
  missing: number
  p50: number
  p95: number
  p99: number
  max: number
  /** p50 of each round, in the order run (rounds alternate between the systems). */
  roundP50s: number[]
}

/** One window of one system: its latencies (ms) and the rows that were never picked up. */
export interface LatencyWindow {
  latencies: number[]
  missing: number
}

/** Pools the windows of one system into one result. */
export function poolWindows(windows: readonly LatencyWindow[]): LatencyResult {
  const all = windows.flatMap((w) => w.latencies)
  return {
    samples: all.length,
    missing: windows.reduce((n, w) => n + w.missing, 0),
    p50: percentile(all, 50),
    p95: percentile(all, 95),
    p99: percentile(all, 99),
    max: all.length > 0 ? Math.max(...all) : Number.NaN,
    roundP50s: windows.map((w) => percentile(w.latencies, 50)),
  }
}

/**
 * Commit and handler-start times of rows by key, for one system's run. An in-process system reports
 * handler starts through `onStart`; an out-of-process one measures its own latencies (`latenciesMs`).
 */
export function pickupRecorder() {
  const starts = new Map<number, number>()
  const commits = new Map<number, number>()
  /** Commit and start times (performance.now()) of each row picked up, in commit order. */
  const pickedUp = (): { committedAt: number; startedAt: number }[] =>
    [...commits].flatMap(([k, t]) =>
      starts.has(k) ? [{ committedAt: t, startedAt: starts.get(k)! }] : [],
    )
  return {
    onStart(key: number, atMs = performance.now()) {
      if (key > 0 && !starts.has(key)) starts.set(key, atMs)
    },
    committed(key: number) {
      commits.set(key, performance.now())
    },
    pickedUp,
    /** Commit → start per row picked up, in ms. */
    async latencies(sys: BenchSystem): Promise<number[]> {
      if (sys.latenciesMs) return sys.latenciesMs()
      return pickedUp().map((r) => r.startedAt - r.committedAt)
    },
  }
}

/**
 * "Commit" is taken when the single-statement insert is issued (autocommit), so each figure includes
 * the insert's own round trip and commit (0.4–2 ms on this machine: less when it is busy); the binary's figures come from
 * the database (attempt started_at − row created_at), which has the same starting point.
 */
export async function latencyWindow(
  sys: BenchSystem,
  o: { perSecond: number; seconds: number; concurrency: number },
): Promise<LatencyWindow> {
  await sys.reset()
  const pickups = pickupRecorder()
  await sys.start({ concurrency: o.concurrency, onStart: pickups.onStart })
  const total = o.perSecond * o.seconds
  try {
    await Bun.sleep(1000)
    const begin = performance.now()
    for (let k = 1; k <= total; k++) {
      const due = begin + ((k - 1) * 1000) / o.perSecond
      const wait = due - performance.now()
      if (wait > 0) await Bun.sleep(wait)
      pickups.committed(k)
      await sys.insertOne(k)
    }
    const deadline = performance.now() + 5000
    while (performance.now() < deadline && (await sys.remaining()) > 0) await Bun.sleep(50)
  } finally {
    await sys.stop()
  }
  const latencies = await pickups.latencies(sys)
  return { latencies, missing: total - latencies.length }
}
