// `bun run bench/binary-pickup-turns.ts [rounds] [seconds]`: the compiled binary's pickups through the Graph fake as the suite runs them, against another build's, taking turns.
//
// Each window is the suite's (bench/latency.ts: the binary started, 1 s later 50 rows/s committed
// one at a time, concurrency 10, commit acknowledged → send start from the attempt history), so
// rows 1–3 of a window are a new process's first pickups. PICKUP_BINARY_FROM=<another build>: one
// more binary, that build (a worktree's `bun run build`), on a database this checkout migrated, the
// two taking turns window by window. Reported per binary: pooled percentiles, rows 1–3 and the rest
// apart, the slowest rows (window, row), and `uptime` before and after (round 38).
import { startBenchCluster } from './cluster.ts'
import { inImageEnv } from './image-env.ts'
import { type LatencyWindow, latencyWindow, pickupPercentile, poolWindows } from './latency.ts'
import { loadAverage } from './load-average.ts'
import { systemByKey } from './systems/by-key.ts'
import { openProbe, type Probe } from './systems/probe.ts'
import type { BenchSystem } from './systems/system.ts'
import { rotated } from './turns.ts'

const rounds = Number(process.argv[2] ?? 6)
const seconds = Number(process.argv[3] ?? 3)
const otherBinary = process.env.PICKUP_BINARY_FROM || undefined
/** Rows of a window counted as a new process's first pickups. */
const FIRST_ROWS = 3

await inImageEnv()
console.log(`before: ${loadAverage()}`)
const cluster = await startBenchCluster()
const probes: Probe[] = []
const systems: { label: string; sys: BenchSystem }[] = []
async function place(label: string, database: string, binary?: string) {
  await cluster.createDatabase(database)
  const probe = await openProbe(cluster.probeUrl(database))
  probes.push(probe)
  const sys = await systemByKey('outbox_binary', cluster.url(database), probe, binary)
  await sys.prepare()
  systems.push({ label, sys })
}
try {
  await place('binary (this checkout)', 'outbox_binary')
  if (otherBinary) await place(`binary ${otherBinary}`, 'outbox_binary_other', otherBinary)
  const windows = new Map<string, LatencyWindow[]>(systems.map((s) => [s.label, []]))
  for (let r = 0; r < rounds; r++) {
    for (const s of rotated(systems, r)) {
      const w = await latencyWindow(s.sys, { perSecond: 50, seconds, concurrency: 10 })
      windows.get(s.label)!.push(w)
      const head = w.latencies.slice(0, 5).map((x) => x.toFixed(1))
      console.log(`round ${r + 1} ${s.label}: rows 1–5 ${head.join(' / ')} ms`)
    }
  }
  const fmt = (x: number | null) => (x === null ? '>5000' : x.toFixed(2))
  console.log(`${rounds} windows of ${seconds} s at 50 rows/s per binary, taking turns`)
  console.table(
    [...windows].map(([label, ws]) => {
      const p = poolWindows(ws)
      const first = ws.flatMap((w) => w.latencies.slice(0, FIRST_ROWS))
      const rest = ws.flatMap((w) => w.latencies.slice(FIRST_ROWS))
      return {
        system: label,
        samples: p.samples,
        missing: p.missing,
        'p50 / p95 / p99 / max ms': [p.p50, p.p95, p.p99, p.max].map(fmt).join(' / '),
        [`rows 1–${FIRST_ROWS} p50 / max`]: [50, 100]
          .map((q) => fmt(pickupPercentile(first, 0, q)))
          .join(' / '),
        [`rows ${FIRST_ROWS + 1}+ p99`]: fmt(pickupPercentile(rest, 0, 99)),
        'slowest (window.row ms)': p.slowest
          .map((s) => `${s.round}.${s.row} ${s.ms.toFixed(1)}`)
          .join(', '),
      }
    }),
  )
} finally {
  for (const s of systems) await s.sys.dispose?.()
  for (const p of probes) await p.close()
  await cluster.stop()
  console.log(`after: ${loadAverage()}`)
}
