// `bun run bench/drain-turns.ts [reps] [rows] [concurrencies] [systems]`: the suite's drains alone, the systems taking turns, with each drain's cost per row.
//
// A full `bun run bench` drains each system three times per concurrency among pickups and idle
// phases, minutes apart, and on this shared machine a rep's rate or CPU per row moves by a third
// from one spell to the next (round 29: c50 at 1.09× and 0.87× graphile-worker 20 minutes apart).
// This runs only the drains (bench/drain.ts, as the suite does: pre-inserted rows, each client in a
// process of its own, CPU per row from the server processes' /proc, WAL from the insert's commit),
// the systems taking turns drain by drain in a rotating order, after one unmeasured warm-up each,
// and reports medians with their spread and each system's ratios to the first one rep by rep, the
// two drains of a ratio seconds apart.
// DRAIN_ENGINE_FROM=<another checkout> adds that checkout's engine, its client code (its
// bench/systems/host.ts and src/) on a database its own migrations made, so a round's engine is
// measured against an earlier one's in the same run (e.g. a worktree of the previous round's commit).
// The two engines then drain back to back, which first swapping (bench/drain-order.ts), and every
// drain's rows are cleared before the next drain. An A/A run (the same commit on both sides) read
// 0.79-1.14 by a run's median, single pairs 0.68-1.35 (BENCHMARKS.md, round 43 pairbias): a paired
// claim is a run and its repeat with DRAIN_OTHER_FIRST=1 agreeing beyond that. Load before and after.
import { join, resolve } from 'node:path'
import { startBenchCluster } from './cluster.ts'
import { type DrainRun, drainRun } from './drain.ts'
import { drainOrder } from './drain-order.ts'
import { inImageEnv } from './image-env.ts'
import { loadAverage } from './load-average.ts'
import { median } from './percentiles.ts'
import { checkSystemKeys, systemByKey } from './systems/by-key.ts'
import { hostedSystem, placedSystem } from './systems/hosted.ts'
import { openProbe, type Probe } from './systems/probe.ts'
import type { BenchSystem } from './systems/system.ts'

const CAP_MS = 10_000

await inImageEnv()
const reps = Number(process.argv[2] ?? 5)
const rows = Number(process.argv[3] ?? 20_000)
const concurrencies = (process.argv[4] ?? '50').split(',').map(Number)
const keys = (process.argv[5] ?? 'graphile_batched,outbox_engine').split(',')
checkSystemKeys(keys)
// Absolute: a relative import would resolve against this file's folder, a spawn against the cwd.
const otherCheckout = process.env.DRAIN_ENGINE_FROM
  ? resolve(process.env.DRAIN_ENGINE_FROM)
  : undefined
const otherFirst = process.env.DRAIN_OTHER_FIRST === '1'

console.log(`before: ${loadAverage()}`)
const cluster = await startBenchCluster()
const probes: Probe[] = []
const systems: { label: string; sys: BenchSystem }[] = []
async function place(label: string, key: string, database: string, checkout?: string) {
  await cluster.createDatabase(database)
  const probe = await openProbe(cluster.probeUrl(database))
  probes.push(probe)
  const url = cluster.url(database)
  let sys: BenchSystem
  if (checkout) {
    const inner = await systemByKey(key, url, probe)
    const { migrate } = await import(join(checkout, 'src/db/migrate.ts'))
    const { silentLogger } = await import(join(checkout, 'src/log.ts'))
    sys = hostedSystem(
      key,
      url,
      { ...inner, database, prepare: () => migrate({ url, log: silentLogger }) },
      join(checkout, 'bench/systems/host.ts'),
    )
  } else sys = await placedSystem(key, url, probe)
  await sys.prepare()
  systems.push({ label, sys })
}

const runs = new Map<string, DrainRun[]>()
const at = (label: string, c: number) => `${label}@${c}`
try {
  // DRAIN_OTHER_FIRST=1: the other checkout's database is created and listed first, so a run can be
  // repeated with the placement swapped (A/A pairs read 0.95x with it last and with it first).
  const placeOther = () =>
    place(`engine of ${otherCheckout}`, 'outbox_engine', 'engine_other', otherCheckout)
  if (otherCheckout && otherFirst) await placeOther()
  for (const key of keys) await place(key, key, key)
  if (otherCheckout && !otherFirst) await placeOther()
  // Each drain's garbage is cleared (reset: its rows emptied, then vacuum analyze, on the probe)
  // before the next system's window: left to autovacuum, it was vacuumed in another system's drain
  // (round 43: outbox_engine's worker, 50 ms, inside the other engine's c50 drain, which read 1.14×).
  const drain = async (s: BenchSystem, c: number, capMs: number) => {
    const r = await drainRun(cluster, s, rows, c, capMs)
    await s.reset()
    return r
  }
  for (const s of systems) await drain(s.sys, concurrencies[0]!, 3_000)
  // Ours and the other checkout's engine drain back to back, on equal terms (bench/drain-order.ts).
  const ours = systems.find((s) => s.label === 'outbox_engine')
  const theirs = systems.find((s) => s.label.startsWith('engine of'))
  const pair = ours && theirs ? ([ours, theirs] as const) : undefined
  for (const { rep, concurrency: c, system: s } of drainOrder(systems, reps, concurrencies, pair)) {
    const r = await drain(s.sys, c, CAP_MS)
    runs.set(at(s.label, c), [...(runs.get(at(s.label, c)) ?? []), r])
    console.error(
      `rep ${rep + 1} c${c} ${s.label}: ${Math.round(r.rowsPerSecond)} rows/s, ${r.cpuMicrosPerRow.toFixed(1)} µs/row PG, ${Math.round(r.walBytesPerRow)} B/row WAL`,
    )
  }
} finally {
  for (const s of systems) await s.sys.dispose?.()
  for (const p of probes) await p.close()
  await cluster.stop()
}

// Median and spread (min–max) of one figure over a system's reps.
const spread = (xs: number[], digits = 0) =>
  `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`
console.log(
  `${reps} drains of ${rows} rows per system and concurrency, taking turns; median (min–max)`,
)
for (const c of concurrencies) {
  console.log(`concurrency ${c}`)
  console.table(
    systems.map(({ label }) => {
      const rs = runs.get(at(label, c))!
      return {
        system: `${label}${rs.every((r) => r.complete) ? '' : ' *'}`,
        'rows/s': spread(rs.map((r) => r.rowsPerSecond)),
        'PG CPU µs/row': spread(
          rs.map((r) => r.cpuMicrosPerRow),
          1,
        ),
        'WAL B/row': spread(rs.map((r) => r.walBytesPerRow)),
        'stmts/row': median(rs.map((r) => r.statementsPerRow)).toFixed(5),
        'client CPU µs/row': spread(
          rs.map((r) => r.clientCpuMicrosPerRow),
          1,
        ),
      }
    }),
  )
  // Rep by rep, each system against each one before it: the two drains of a ratio ran seconds apart.
  const list = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(' / ')
  systems.forEach(({ label }, j) => {
    const rs = runs.get(at(label, c))!
    for (const { label: baseLabel } of systems.slice(0, j)) {
      const base = runs.get(at(baseLabel, c))!
      const rate = rs.map((r, i) => r.rowsPerSecond / base[i]!.rowsPerSecond)
      const cpu = rs.map((r, i) => r.cpuMicrosPerRow / base[i]!.cpuMicrosPerRow)
      console.log(
        `${label} ÷ ${baseLabel}: rate ${median(rate).toFixed(2)}× (${list(rate)}); PG CPU per row ${median(cpu).toFixed(2)}× (${list(cpu)})`,
      )
    }
  })
}
console.log('* = a drain hit the 10 s cap (rate over the rows done).')
console.log(`after: ${loadAverage()}`)
