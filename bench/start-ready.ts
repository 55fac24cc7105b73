// Start-to-ready of compiled binaries taking turns on one cluster: spawn → first /readyz 200, for A/B of a start's path.
//
//   [START_READY_TRANSPORT=graph] bun run bench/start-ready.ts [starts] [binary ...]
//
// Each binary is started as the suite starts its binary (bench/systems/outbox-binary.ts: the release
// image's environment, `/readyz` polled every 2 ms), with the discard transport (or, as the suite's
// figure, the Graph fake's: its worker primes a claim, a slot take and a last check), at concurrency 10,
// on one migrated database (the first binary's migrations: list the newest first), `starts` times,
// the binaries alternating start by start so that a slower spell of the machine lands on each alike,
// their order rotating round by round (as the other turns benches: no binary always starts right
// after the same one's stop); each binary after the first is also compared with it round by round
// (median paired difference). Without binaries: this checkout's build.
import { compiledBinary } from '../test/support/binary.ts'
import { startBenchCluster } from './cluster.ts'
import { median, percentile } from './percentiles.ts'
import { outboxBinarySystem } from './systems/outbox-binary.ts'
import { openProbe } from './systems/probe.ts'
import { rotated } from './turns.ts'

const starts = Number(process.argv[2] ?? 20)
const bins = process.argv.length > 3 ? process.argv.slice(3) : [await compiledBinary()]
const transport = process.env.START_READY_TRANSPORT === 'graph' ? 'graph' : 'discard'
const cluster = await startBenchCluster()
try {
  await cluster.createDatabase('start_ready')
  const probe = await openProbe(cluster.probeUrl('start_ready'))
  try {
    const url = cluster.url('start_ready')
    const systems = bins.map((bin) => ({
      bin,
      sys: outboxBinarySystem('start_ready', url, probe, bin, transport),
      ms: [] as number[],
    }))
    try {
      await systems[0]!.sys.prepare()
      for (let i = 0; i < starts; i++) {
        for (const s of rotated(systems, i)) {
          await s.sys.start({ concurrency: 10 })
          s.ms.push(s.sys.lastRun()!.readyMs)
          await s.sys.stop()
        }
      }
    } finally {
      // The Graph fake each one started.
      for (const s of systems) await s.sys.dispose?.()
    }
    for (const { bin, ms } of systems) {
      console.log(
        `${bin}: median ${median(ms).toFixed(0)} ms, p90 ${percentile(ms, 90).toFixed(0)} (${Math.min(...ms).toFixed(0)}–${Math.max(...ms).toFixed(0)}); ${ms.map((x) => x.toFixed(0)).join(', ')}`,
      )
    }
    // Start i of each binary came in the same round, seconds apart: the difference of a pair is
    // what the spell of the machine moves least.
    const first = systems[0]!
    for (const { bin, ms } of systems.slice(1)) {
      const diffs = ms.map((x, i) => x - first.ms[i]!)
      const slower = diffs.filter((d) => d > 0).length
      console.log(
        `${bin} − ${first.bin}: median paired difference ${median(diffs).toFixed(1)} ms; slower in ${slower} of ${diffs.length} rounds; medians' ratio ${(median(ms) / median(first.ms)).toFixed(2)}, p90s' ${(percentile(ms, 90) / percentile(first.ms, 90)).toFixed(2)}`,
      )
    }
  } finally {
    await probe.close()
  }
} finally {
  await cluster.stop()
}
