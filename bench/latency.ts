// Pickup latency: rows committed one at a time at a steady rate; commit → send (handler) start, in rounds.
import { percentile } from './percentiles.ts'
import { longestWithin, STALL_MS, type StallWatch, watchStalls } from './stalls.ts'
import type { BenchSystem } from './systems/system.ts'

/**
 * How long a window waits after its last insert for the rows still out. A row never picked up took
 * longer than that: the figures rank it above every row that was, and a percentile that falls among
 * such rows is null (more than this; never a figure over the rows picked up alone).
 */
export const PICKUP_WAIT_MS = 5_000

export interface LatencyResult {
  /** Pooled over every round. */
  samples: number
  missing: number
  /** Null: among the rows never picked up (longer than PICKUP_WAIT_MS). */
  p50: number | null
  p95: number | null
  p99: number | null
  max: number | null
  /** p50 of each round, in the order run (rounds alternate between the systems). */
  roundP50s: (number | null)[]
  /**
   * The slowest pickups, slowest first: which round and which row of its window (row 1 is the
   * first after the system's start), so that a p99 can be traced to the rows that make it.
   */
  slowest: { ms: number; round: number; row: number; stallMs?: number }[]
}

// A full run pools about 450 rows per system: its p99 is the fifth-slowest.
const SLOWEST = 5

/** One window of one system: its latencies (ms, in commit order) and the rows never picked up. */
export interface LatencyWindow {
  latencies: number[]
  missing: number
  /** Per row, the longest stall inside its pickup (pickupRecorder's `stalls`); not for the binary. */
  stalledMs?: number[]
  /**
   * Per row inserted, in key order: its insert sent, its commit acknowledged and its handler's
   * start (performance.now() of this process), for a pickup's stages (bench/pickup-stages.ts).
   */
  rows?: { sentAt: number; committedAt: number; startedAt?: number }[]
}

/** Whether `sys` runs its client side in this process (neither hosted nor the binary). */
export function clientInThisProcess(sys: BenchSystem): boolean {
  return !sys.clientStalls && !sys.sendStartsMs
}

/**
 * A percentile of the rows picked up (`latencies`) and the `missing` ones, which took longer than
 * any of them; null when it falls among the missing.
 */
export function pickupPercentile(latencies: readonly number[], missing: number, p: number) {
  const x = percentile([...latencies, ...Array<number>(missing).fill(Infinity)], p)
  return x === Infinity ? null : x
}

/** Pools the windows of one system into one result. */
export function poolWindows(windows: readonly LatencyWindow[]): LatencyResult {
  const all = windows.flatMap((w) => w.latencies)
  const missing = windows.reduce((n, w) => n + w.missing, 0)
  return {
    samples: all.length,
    missing,
    p50: pickupPercentile(all, missing, 50),
    p95: pickupPercentile(all, missing, 95),
    p99: pickupPercentile(all, missing, 99),
    max: pickupPercentile(all, missing, 100),
    roundP50s: windows.map((w) => pickupPercentile(w.latencies, w.missing, 50)),
    slowest: windows
      .flatMap((w, i) =>
        w.latencies.map((ms, j) => {
          const stallMs = w.stalledMs?.[j] ?? 0
          return { ms, round: i + 1, row: j + 1, ...(stallMs > 0 ? { stallMs } : {}) }
        }),
      )
      .sort((a, b) => b.ms - a.ms)
      .slice(0, SLOWEST),
  }
}

/**
 * Commit and handler-start times of rows by key, for one system's run. An in-process system reports
 * handler starts through `onStart`; an out-of-process one records its own (`sendStartsMs`), read
 * at the end. Either way a pickup runs from this recorder's commit to the start.
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
    /**
     * Called once the row's insert has returned: its commit is acknowledged. Taken when the insert
     * was issued, each system's figure would include its own insert's work before the commit (a
     * plain insert, graphile-worker's add_job, pg-boss's four round trips), which the issue's
     * "commit → send start" leaves out; the acknowledgement trails the commit by one reply, the
     * same for every system.
     */
    committed(key: number) {
      commits.set(key, performance.now())
    },
    pickedUp,
    /** Each row's insert sent (`sentAt`, by key from 1), commit acknowledged and start, in key order. */
    timed(sentAt: readonly number[]) {
      return sentAt.map((at, i) => {
        const startedAt = starts.get(i + 1)
        const committedAt = commits.get(i + 1) ?? at
        return startedAt === undefined
          ? { sentAt: at, committedAt }
          : { sentAt: at, committedAt, startedAt }
      })
    },
    /** Commit → start per row picked up, in ms, in commit order. */
    async latencies(sys: BenchSystem): Promise<number[]> {
      if (sys.sendStartsMs) {
        for (const [key, epochMs] of await sys.sendStartsMs()) {
          if (!starts.has(key)) starts.set(key, epochMs - performance.timeOrigin)
        }
      }
      return pickedUp().map((r) => r.startedAt - r.committedAt)
    },
    /**
     * Per row picked up, the longest event-loop stall inside its pickup of the process its client
     * runs in: its own (a hosted system, started with `watchStallsMs`), else this one (`here`, a
     * watch started by the caller when clientInThisProcess). None for a system that times its own
     * pickups (the binary).
     */
    async stalls(sys: BenchSystem, here: StallWatch | null): Promise<number[] | undefined> {
      if (sys.sendStartsMs) return undefined
      const list = sys.clientStalls ? await sys.clientStalls() : (here?.stalls() ?? [])
      return pickedUp().map((r) => longestWithin(list, r.committedAt, r.startedAt))
    },
  }
}

/**
 * "Commit" is taken when the insert's commit is acknowledged (pickupRecorder's `committed`), for
 * the binary too, whose send starts come from its attempt history.
 */
export async function latencyWindow(
  sys: BenchSystem,
  o: { perSecond: number; seconds: number; concurrency: number },
): Promise<LatencyWindow> {
  await sys.reset()
  const pickups = pickupRecorder()
  await sys.start({
    concurrency: o.concurrency,
    onStart: pickups.onStart,
    watchStallsMs: STALL_MS,
  })
  const total = o.perSecond * o.seconds
  const sentAt: number[] = []
  // A 5 ms timer: only where the system's client runs (a hosted one watches in its own process).
  const here = clientInThisProcess(sys) ? watchStalls(STALL_MS) : null
  try {
    await Bun.sleep(1000)
    const begin = performance.now()
    for (let k = 1; k <= total; k++) {
      const due = begin + ((k - 1) * 1000) / o.perSecond
      const wait = due - performance.now()
      if (wait > 0) await Bun.sleep(wait)
      sentAt.push(performance.now())
      await sys.insertOne(k)
      pickups.committed(k)
    }
    const deadline = performance.now() + PICKUP_WAIT_MS
    while (performance.now() < deadline && (await sys.remaining()) > 0) await Bun.sleep(50)
  } finally {
    here?.stop()
    await sys.stop()
  }
  const latencies = await pickups.latencies(sys)
  const stalledMs = await pickups.stalls(sys, here)
  return {
    latencies,
    missing: total - latencies.length,
    ...(stalledMs ? { stalledMs } : {}),
    rows: pickups.timed(sentAt),
  }
}
