// The one-off drain tools' set-up: one cluster, each key's system in its own database, placed as the suite places it.
import { type BenchCluster, startBenchCluster } from './cluster.ts'
import { placedSystem } from './systems/hosted.ts'
import { openProbe, type Probe } from './systems/probe.ts'
import type { BenchSystem } from './systems/system.ts'

/**
 * Starts a cluster, prepares the systems `keys` name (each client in a process of its own unless
 * BENCH_SHARED_PROCESS=1), runs `run`, then disposes them, their probes and the cluster, also when
 * a set-up or `run` fails.
 */
export async function withPlacedSystems<T>(
  keys: readonly string[],
  run: (cluster: BenchCluster, systems: BenchSystem[]) => Promise<T>,
): Promise<T> {
  const cluster = await startBenchCluster()
  const systems: BenchSystem[] = []
  const probes: Probe[] = []
  try {
    for (const key of keys) {
      await cluster.createDatabase(key)
      const probe = await openProbe(cluster.probeUrl(key))
      probes.push(probe)
      const sys = await placedSystem(key, cluster.url(key), probe)
      await sys.prepare()
      systems.push(sys)
    }
    return await run(cluster, systems)
  } finally {
    for (const sys of systems) await sys.dispose?.()
    for (const probe of probes) await probe.close()
    await cluster.stop()
  }
}
