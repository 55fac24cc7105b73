// `bun run bench/ceiling-variants.ts [reps] [rows] [systems]`: the ceiling's drain rate by claim size and plan, beside ours.
//
// The 80 % target reads the ceiling (bench/systems/ceiling.ts) as what Postgres allows on the
// machine. Until round 19 its claim's plan was left to the planner, which after a bulk insert into a
// table analysed empty sorted every pending row per claim, so its rate moved with the planner's
// statistics; and pinned or not, it drains faster with larger claims (its loops are serial, each
// commit waiting for its flush). This drains (bench/drain.ts, as the suite does:
// pre-inserted rows, each system's client in a process of its own) the ceiling pinned (as the suite
// now runs it) and unpinned, with 500- and 2000-row claims, beside graphile-worker's batched preset
// and our engine. The systems take turns drain by drain (the order rotating), at concurrency 10 and
// 50, after one unmeasured warm-up drain each. Reported per system: median rows/s, Postgres and
// client CPU per row; and each other system's rate as a share of each ceiling's, rep by rep.

import { type DrainRun, drainRun } from './drain.ts'
import { inImageEnv } from './image-env.ts'
import { median } from './percentiles.ts'
import { withPlacedSystems } from './placed-systems.ts'
import { checkSystemKeys } from './systems/by-key.ts'
import { rotated } from './turns.ts'

const CONCURRENCIES = [10, 50]
const CAP_MS = 10_000

await inImageEnv()
const reps = Number(process.argv[2] ?? 5)
const rows = Number(process.argv[3] ?? 20_000)
const keys = (
  process.argv[4] ??
  'ceiling,ceiling_unpinned,ceiling_2000,ceiling_unpinned_2000,graphile_batched,outbox_engine'
).split(',')
checkSystemKeys(keys)

const runs = new Map<string, DrainRun[]>()
const at = (key: string, c: number) => `${key}@${c}`
const systems = await withPlacedSystems(keys, async (cluster, systems) => {
  for (const sys of systems) await drainRun(cluster, sys, rows, CONCURRENCIES[0]!, CAP_MS)
  for (let rep = 0; rep < reps; rep++) {
    for (const c of CONCURRENCIES) {
      for (const sys of rotated(systems, rep)) {
        const r = await drainRun(cluster, sys, rows, c, CAP_MS)
        const k = at(sys.database, c)
        runs.set(k, [...(runs.get(k) ?? []), r])
        console.error(`${sys.name} c${c}: ${Math.round(r.rowsPerSecond)} rows/s`)
      }
    }
  }
  return systems
})

const fmt = (x: number) => Math.round(x).toLocaleString('en-US')
const rate = (key: string, c: number) => median(runs.get(at(key, c))!.map((r) => r.rowsPerSecond))
console.log(
  `${reps} drains of ${rows} rows per system and concurrency, the systems taking turns; medians`,
)
console.table(
  systems.map((s) => {
    const row: Record<string, string> = { system: s.name }
    for (const c of CONCURRENCIES) {
      const rs = runs.get(at(s.database, c))!
      row[`c${c} rows/s`] = `${fmt(rate(s.database, c))}${rs.every((r) => r.complete) ? '' : '*'}`
      row[`c${c} PG · client CPU µs/row`] =
        `${fmt(median(rs.map((r) => r.cpuMicrosPerRow)))} · ${fmt(median(rs.map((r) => r.clientCpuMicrosPerRow)))}`
    }
    return row
  }),
)
// Rep by rep, so that both drains of a ratio ran minutes apart at most.
const ceilings = keys.filter((k) => k.startsWith('ceiling'))
for (const key of keys.filter((k) => !k.startsWith('ceiling'))) {
  const name = systems.find((s) => s.database === key)!.name
  for (const c of CONCURRENCIES) {
    const shares = ceilings.map((ck) => {
      const ours = runs.get(at(key, c))!
      const theirs = runs.get(at(ck, c))!
      const ratios = ours.map((r, i) => r.rowsPerSecond / theirs[i]!.rowsPerSecond)
      return `${ck} ${(median(ratios) * 100).toFixed(0)} % (${ratios.map((x) => x.toFixed(2)).join(' / ')})`
    })
    console.log(`${name} c${c}, share of: ${shares.join('; ')}`)
  }
}
console.log('* = a drain hit the 10 s cap (rate over the rows done).')
