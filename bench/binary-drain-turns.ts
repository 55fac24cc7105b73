// `bun run bench/binary-drain-turns.ts [reps] [rows]`: the compiled binary's drains through the Graph fake against another build's, taking turns, with each drain's cost per row.
//
// The engine's drains (bench/drain-turns.ts) run the open gate, whose claim records the start: a
// Graph worker's path (the pg gate, its slot take and last check per send) is only on the binary's.
// This drains `rows` pre-inserted rows (bench/drain.ts, as the suite does) at concurrency 10 and 50
// with this checkout's build (`bun run build`, dist/outbox-mailer) and BINARY_FROM=<another build>
// (a worktree's `bun run build`), each on its own database this checkout migrated, the two taking
// turns drain by drain in a rotating order after one unmeasured warm-up each. Reported per drain and
// as medians: rows/s (* = capped at 15 s), PG CPU µs per row, WAL bytes and statements per row; and
// the other build's PG CPU per row over this one's, rep by rep, with the load average before and after.
import { resolve } from 'node:path'
import { startBenchCluster } from './cluster.ts'
import { type DrainRun, drainRun } from './drain.ts'
import { inImageEnv } from './image-env.ts'
import { loadAverage } from './load-average.ts'
import { median } from './percentiles.ts'
import { outboxBinarySystem } from './systems/outbox-binary.ts'
import { openProbe, type Probe } from './systems/probe.ts'
import type { BenchSystem } from './systems/system.ts'
import { rotated } from './turns.ts'

const CAP_MS = 15_000
const reps = Number(process.argv[2] ?? 4)
const rows = Number(process.argv[3] ?? 5_000)
const other = process.env.BINARY_FROM
if (!other) throw new Error('BINARY_FROM=<another build of outbox-mailer> is required')
const builds = [
  { label: 'this checkout', database: 'outbox_binary', bin: resolve('dist/outbox-mailer') },
  { label: other, database: 'outbox_binary_other', bin: resolve(other) },
]

await inImageEnv()
console.log(`before: ${loadAverage()}`)
const cluster = await startBenchCluster()
const probes: Probe[] = []
const systems: { label: string; sys: BenchSystem }[] = []
const runs = new Map<string, DrainRun[]>()
try {
  for (const b of builds) {
    await cluster.createDatabase(b.database)
    const probe = await openProbe(cluster.probeUrl(b.database))
    probes.push(probe)
    // Its own database name, so the drain's cost is read from that database's backends.
    const sys = outboxBinarySystem(b.database, cluster.url(b.database), probe, b.bin, 'graph')
    await sys.prepare()
    systems.push({ label: b.label, sys })
  }
  for (const s of systems) await drainRun(cluster, s.sys, 2_000, 10, 3_000)
  for (let rep = 0; rep < reps; rep++) {
    for (const c of [10, 50]) {
      for (const s of rotated(systems, rep)) {
        const r = await drainRun(cluster, s.sys, rows, c, CAP_MS)
        runs.set(`${s.label}@${c}`, [...(runs.get(`${s.label}@${c}`) ?? []), r])
        console.log(
          `rep ${rep + 1} c${c} ${s.label}: ${Math.round(r.rowsPerSecond)} rows/s${r.complete ? '' : ' *'}, ${r.cpuMicrosPerRow.toFixed(1)} µs/row PG, ${Math.round(r.walBytesPerRow)} B/row WAL, ${r.statementsPerRow.toFixed(3)} statements/row`,
        )
      }
    }
  }
} finally {
  for (const s of systems) await s.sys.dispose?.()
  for (const p of probes) await p.close()
  await cluster.stop()
}
const med = (rs: DrainRun[], f: (r: DrainRun) => number, digits: number) =>
  median(rs.map(f)).toFixed(digits)
for (const c of [10, 50]) {
  console.log(`concurrency ${c}, medians of ${reps}:`)
  for (const { label } of systems) {
    const rs = runs.get(`${label}@${c}`)!
    console.log(
      `  ${label}: ${med(rs, (r) => r.rowsPerSecond, 0)} rows/s, ${med(rs, (r) => r.cpuMicrosPerRow, 1)} µs/row PG, ${med(rs, (r) => r.walBytesPerRow, 0)} B/row WAL, ${med(rs, (r) => r.statementsPerRow, 3)} statements/row`,
    )
  }
  const mine = runs.get(`${systems[0]!.label}@${c}`)!
  const theirs = runs.get(`${systems[1]!.label}@${c}`)!
  const cpu = theirs.map((r, i) => r.cpuMicrosPerRow / mine[i]!.cpuMicrosPerRow)
  console.log(
    `  ${systems[1]!.label} ÷ this checkout, PG CPU per row: ${median(cpu).toFixed(2)}× (${cpu.map((x) => x.toFixed(2)).join(' / ')})`,
  )
}
console.log(`after: ${loadAverage()}`)
