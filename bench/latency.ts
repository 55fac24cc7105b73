// Pickup latency: rows committed one at a time at a steady rate; commit → send (handler) start.
import { percentile } from './percentiles.ts'
import type { BenchSystem } from './systems/system.ts'

export interface LatencyResult {
  samples: number
  missing: number
  p50: number
  p95: number
  p99: number
  max: number
}

/**
 * "Commit" is taken when the single-statement insert is issued (autocommit), so each figure includes
 * the insert's own round trip (well under a millisecond on loopback); the binary's figures come from
 * the database (attempt started_at − row created_at), which has the same starting point.
 */
export async function latencyRun(
  sys: BenchSystem,
  o: { perSecond: number; seconds: number; concurrency: number },
): Promise<LatencyResult> {
  await sys.reset()
  const starts = new Map<number, number>()
  await sys.start({
    concurrency: o.concurrency,
    onStart: (k) => {
      if (k > 0 && !starts.has(k)) starts.set(k, performance.now())
    },
  })
  const commits = new Map<number, number>()
  const total = o.perSecond * o.seconds
  try {
    await Bun.sleep(1000)
    const begin = performance.now()
    for (let k = 1; k <= total; k++) {
      const due = begin + ((k - 1) * 1000) / o.perSecond
      const wait = due - performance.now()
      if (wait > 0) await Bun.sleep(wait)
      commits.set(k, performance.now())
      await sys.insertOne(k)
    }
    const deadline = performance.now() + 5000
    while (performance.now() < deadline && (await sys.remaining()) > 0) await Bun.sleep(50)
  } finally {
    await sys.stop()
  }
  const latencies = sys.latenciesMs
    ? await sys.latenciesMs()
    : [...commits].flatMap(([k, t]) => (starts.has(k) ? [starts.get(k)! - t] : []))
  return {
    samples: latencies.length,
    missing: total - latencies.length,
    p50: percentile(latencies, 50),
    p95: percentile(latencies, 95),
    p99: percentile(latencies, 99),
    max: Math.max(...latencies),
  }
}
