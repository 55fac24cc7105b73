// `bun run bench/idle-rss-turns.ts [cycles] [binary ...]`: the compiled binaries' resident memory after the suite's idle spell, started side by side cycle by cycle.
//
// The suite reads the binary's RSS once (bench/run.ts: after its idle phase, 41 s after a start, a
// /metrics scrape at the start and /readyz and /metrics every 15 s). This starts every binary given
// at once, each on a database of its own (the Graph fake's transport, concurrency 10, as the suite
// starts it), polls them so, reads each one's VmRSS at 41 s and stops them, `cycles` times: two
// builds compared in the same spells, each cycle's difference beside the medians. Without
// binaries: this checkout's build.
import { compiledBinary } from '../test/support/binary.ts'
import { startBenchCluster } from './cluster.ts'
import { rssMiB } from './idle.ts'
import { inImageEnv } from './image-env.ts'
import { median } from './percentiles.ts'
import { outboxBinarySystem } from './systems/outbox-binary.ts'
import { openProbe, type Probe } from './systems/probe.ts'

const IDLE_S = 41
const FLY_CHECK_S = 15

await inImageEnv()
const cycles = Number(process.argv[2] ?? 3)
const bins = process.argv.length > 3 ? process.argv.slice(3) : [await compiledBinary()]
const cluster = await startBenchCluster()
const probes: Probe[] = []
try {
  const systems = []
  for (const [i, bin] of bins.entries()) {
    const database = `idle_rss_${i}`
    await cluster.createDatabase(database)
    const probe = await openProbe(cluster.probeUrl(database))
    probes.push(probe)
    const sys = outboxBinarySystem(database, cluster.url(database), probe, bin, 'graph')
    await sys.prepare()
    systems.push({ bin, sys, mib: [] as number[] })
  }
  const get = (port: number, path: string) =>
    fetch(`http://127.0.0.1:${port}${path}`)
      .then((r) => r.text())
      .catch(() => '')
  try {
    for (let c = 0; c < cycles; c++) {
      await Promise.all(systems.map((s) => s.sys.start({ concurrency: 10 })))
      const t0 = performance.now()
      const ports = systems.map((s) => s.sys.lastRun()!.port)
      await Promise.all(ports.map((p) => get(p, '/metrics')))
      for (let tick = 1; tick * FLY_CHECK_S < IDLE_S; tick++) {
        await Bun.sleep(Math.max(0, t0 + tick * FLY_CHECK_S * 1000 - performance.now()))
        await Promise.all(ports.map((p) => get(p, '/readyz').then(() => get(p, '/metrics'))))
      }
      await Bun.sleep(Math.max(0, t0 + IDLE_S * 1000 - performance.now()))
      for (const s of systems) s.mib.push((await rssMiB(s.sys.lastRun()!.pid)) ?? Number.NaN)
      await Promise.all(systems.map((s) => s.sys.stop()))
      console.log(`cycle ${c + 1}: ${systems.map((s) => s.mib.at(-1)!.toFixed(1)).join(' / ')} MiB`)
    }
  } finally {
    for (const s of systems) await s.sys.stop().catch(() => {})
    for (const s of systems) await s.sys.dispose?.()
  }
  for (const { bin, mib } of systems) {
    console.log(
      `${bin}: idle RSS median ${median(mib).toFixed(1)} MiB (${Math.min(...mib).toFixed(1)}–${Math.max(...mib).toFixed(1)})`,
    )
  }
  const [first, ...rest] = systems
  for (const { bin, mib } of rest) {
    const diffs = mib.map((x, i) => x - first!.mib[i]!)
    console.log(
      `${bin} − ${first!.bin}: ${diffs.map((d) => d.toFixed(1)).join(' / ')} MiB, median ${median(diffs).toFixed(1)}`,
    )
  }
} finally {
  for (const p of probes) await p.close()
  await cluster.stop()
}
