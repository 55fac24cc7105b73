// Idle cost: every system started at once on its own empty database, then 30 s of counting what it asks of Postgres.
import { readFile } from 'node:fs/promises'
import { systemClock } from '../src/clock.ts'
import type { BenchCluster } from './cluster.ts'
import { clientBackends, type ServerSnapshot, snapshot } from './server-stats.ts'
import type { BenchSystem } from './systems/system.ts'

export interface IdleResult {
  seconds: number
  statementsPerSecond: number
  transactionsPerSecond: number
  /** Client backends held: the most seen in once-a-second samples through the window. */
  connections: number
  /** The fewest seen in those samples (what it holds between bursts of work). */
  connectionsMin: number
}

export async function rssMiB(pid: number): Promise<number | null> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => null)
  const kb = status && /VmRSS:\s+(\d+)/.exec(status)?.[1]
  return kb ? Number(kb) / 1024 : null
}

/**
 * Transactions come from pg_stat_database, which a backend flushes at most once a second while busy
 * and within ~10 s when idle: over 30 s the figure is close, not exact. Statements (pg_stat_statements)
 * are counted as they finish.
 */
export async function idleRun(
  cluster: BenchCluster,
  systems: BenchSystem[],
  o: {
    seconds: number
    warmupSeconds: number
    concurrency: number
    /** At the start of the warm-up: e.g. a first scrape whose one-off cost stays out of the window. */
    duringWarmup?: () => Promise<void>
    /** Through the measured window, until `window` aborts: e.g. what a deployment polls. */
    whileMeasuring?: (window: AbortSignal) => Promise<void>
    duringIdle?: () => Promise<void>
  },
): Promise<Map<string, IdleResult>> {
  for (const s of systems) await s.reset()
  await Promise.all(systems.map((s) => s.start({ concurrency: o.concurrency })))
  const out = new Map<string, IdleResult>()
  try {
    await o.duringWarmup?.()
    await Bun.sleep(o.warmupSeconds * 1000)
    const before = await snapshots(cluster, systems)
    const window = new AbortController()
    const measuring = o.whileMeasuring?.(window.signal)
    const held = systems.map(() => [] as number[])
    const sampling = sampleConnections(cluster, systems, held, window.signal)
    await Bun.sleep(o.seconds * 1000)
    window.abort()
    await measuring
    await sampling
    const after = await snapshots(cluster, systems)
    await o.duringIdle?.()
    systems.forEach((s, i) => {
      const a = before[i]!
      const b = after[i]!
      const seconds = (b.at - a.at) / 1000
      out.set(s.name, {
        seconds,
        statementsPerSecond: (b.statements - a.statements) / seconds,
        transactionsPerSecond: (b.transactions - a.transactions) / seconds,
        connections: Math.max(...held[i]!),
        connectionsMin: Math.min(...held[i]!),
      })
    })
  } finally {
    await Promise.all(systems.map((s) => s.stop()))
  }
  return out
}

/** At the window's start, once a second through it, and at its end: each system's client backends. */
async function sampleConnections(
  cluster: BenchCluster,
  systems: BenchSystem[],
  into: number[][],
  window: AbortSignal,
): Promise<void> {
  const names = systems.map((s) => s.database)
  const sample = async () => {
    const counts = await clientBackends(cluster.admin, names)
    counts.forEach((n, i) => {
      into[i]!.push(n)
    })
  }
  while (!window.aborted) {
    await sample()
    await systemClock.sleep(1000, window)
  }
  await sample()
}

/** Each system's server counters, one after another: they share the one admin connection. */
async function snapshots(cluster: BenchCluster, systems: BenchSystem[]) {
  const out: ServerSnapshot[] = []
  for (const s of systems)
    out.push(await snapshot(cluster.admin, cluster.postmasterPid, s.database))
  return out
}
