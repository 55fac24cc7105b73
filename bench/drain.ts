// One drain run: N pre-inserted rows, timed from the insert's commit to the last row recorded done.
import type { BenchCluster } from './cluster.ts'
import { costBetween, lsnBytes, type ServerCost, snapshot } from './server-stats.ts'
import type { BenchSystem } from './systems/system.ts'

export interface DrainRun {
  concurrency: number
  rows: number
  seconds: number
  rowsPerSecond: number
  /** False when the time cap stopped the run before every row was done. */
  complete: boolean
  cost: ServerCost
  statementsPerRow: number
  walBytesPerRow: number
  cpuMicrosPerRow: number
  /** WAL the insert of the rows wrote (the enqueue side, for a whole-life comparison). */
  enqueueWalBytesPerRow: number
  /**
   * CPU per row of the process the client side runs in: its own (bench/systems/hosted.ts), else
   * this one (in-process systems; for the binary, the Graph fake's).
   */
  clientCpuMicrosPerRow: number
  /** WAL range of the drain (insert commit → end), for a per-record breakdown (bench/profile.ts). */
  wal: { from: string; to: string }
  /** The timed span (insert commit → last row done), epoch milliseconds, for bench/cpu-split.ts. */
  span: { fromMs: number; toMs: number }
}

/** How long a drain waits, at most, for autovacuum workers to finish before it begins. */
export const AUTOVACUUM_WAIT_MS = 20_000

export async function drainRun(
  cluster: BenchCluster,
  sys: BenchSystem,
  rows: number,
  concurrency: number,
  capMs: number,
  quietMaxMs = AUTOVACUUM_WAIT_MS,
): Promise<DrainRun> {
  await sys.reset()
  let handled = 0
  await sys.start({ concurrency, onStart: () => handled++ })
  const outOfProcess = sys.sendStartsMs !== undefined
  try {
    await Bun.sleep(500)
    await autovacuumQuiet(cluster, quietMaxMs)
    const a = await snapshot(cluster.admin, cluster.postmasterPid, sys.database)
    const walFrom = await sys.insertBulk(rows)
    const cpu0 = await clientCpuMicros(sys)
    const t0 = performance.now()
    let left = rows
    while (performance.now() - t0 < capMs) {
      if (!outOfProcess && handled < rows) {
        await Bun.sleep(5)
        continue
      }
      left = await sys.remaining()
      if (left === 0) break
      await Bun.sleep(outOfProcess ? 20 : 10)
    }
    const t1 = performance.now()
    const cpu1 = (await clientCpuMicros(sys)) - cpu0
    const b = await snapshot(cluster.admin, cluster.postmasterPid, sys.database)
    if (left !== 0) left = await sys.remaining()
    const done = rows - left
    const cost = costBetween(a, b, walFrom)
    return {
      concurrency,
      rows: done,
      seconds: (t1 - t0) / 1000,
      rowsPerSecond: done / ((t1 - t0) / 1000),
      complete: left === 0,
      cost,
      statementsPerRow: cost.statements / done,
      walBytesPerRow: cost.walBytes / done,
      cpuMicrosPerRow: (cost.cpuSeconds * 1e6) / done,
      enqueueWalBytesPerRow: Number(lsnBytes(walFrom) - lsnBytes(a.walLsn)) / rows,
      clientCpuMicrosPerRow: cpu1 / done,
      wal: { from: walFrom, to: b.walLsn },
      span: { fromMs: performance.timeOrigin + t0, toMs: performance.timeOrigin + t1 },
    }
  } finally {
    await sys.stop()
  }
}

/** CPU time (µs) so far of the process where `sys` runs its client side. */
async function clientCpuMicros(sys: BenchSystem): Promise<number> {
  if (sys.clientCpuMicros) return sys.clientCpuMicros()
  const u = process.cpuUsage()
  return u.user + u.system
}

/**
 * Waits (at most `maxMs`) until no autovacuum worker runs: cleaning up after the previous system's
 * drain would otherwise compete for the two cores with the next one.
 */
async function autovacuumQuiet(cluster: BenchCluster, maxMs: number): Promise<void> {
  const deadline = performance.now() + maxMs
  while (performance.now() < deadline) {
    const r = await cluster.admin.query<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity where backend_type = 'autovacuum worker'`,
    )
    if (r.rows[0]!.n === 0) return
    await Bun.sleep(100)
  }
}
