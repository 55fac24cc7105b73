// `bun run bench/idle-span.ts [seconds] [systems] [phase]`: idle statements over minutes, window by window, beside the suite's one 30 s window.
//
// The suite (bench/idle.ts) counts one 30 s window, 11 s to 41 s after every system's start. Work
// a system does less often than that falls in the window or not by its phase, the same in every
// run: ours beat the worker registry once a minute (at the start, then 60 s later) and the binary
// re-checks its schema and recounts its finished rows every 5 minutes, none of them inside 11-41 s.
// This starts the systems as the suite's idle phase does (each on its own empty database, the
// binary idling as deployed: /readyz and /metrics every 15 s, one scrape during the first 11 s),
// then prints each one's top-level statements in consecutive 30 s windows from 11 s, the suite's
// window, and the rate over the whole span (default 330 s: the 5-minute work once).
// `phase` (seconds, 0 to 14, default 0) moves the binary's check and scrape that far into each 15 s
// tick: their cadence is fly.toml's, their phase against the worker's own timers (backstop poll,
// reclaim, both counted from its start) is the deployment's, and readiness standing on a recent
// answer saves statements by that phase.
import { compiledBinary } from '../test/support/binary.ts'
import { startBenchCluster } from './cluster.ts'
import { inImageEnv } from './image-env.ts'
import { fmt } from './report.ts'
import { checkSystemKeys, SYSTEM_KEYS } from './systems/by-key.ts'
import { placedSystem } from './systems/hosted.ts'
import { outboxBinarySystem } from './systems/outbox-binary.ts'
import { openProbe, type Probe } from './systems/probe.ts'
import type { BenchSystem } from './systems/system.ts'

await inImageEnv()
const seconds = Number(process.argv[2] ?? 330)
// The ceiling polls in a tight loop by design: no idle figure, as in the suite.
const keys = (process.argv[3] ?? SYSTEM_KEYS.filter((k) => k !== 'ceiling').join(',')).split(',')
checkSystemKeys(keys)
const phaseS = Number(process.argv[4] ?? 0)
if (!Number.isFinite(seconds) || seconds < 41 || !(phaseS >= 0 && phaseS < 15)) {
  console.error('usage: bun run bench/idle-span.ts [seconds ≥ 41] [systems] [phase 0-14 s]')
  process.exit(2)
}
// As the suite: past the pools' 10 s idle timeout; fly.toml's check and scrape interval.
const WARMUP_S = 11
const WINDOW_S = 30
const FLY_CHECK_S = 15

const [bin, cluster] = await Promise.all([
  keys.includes('outbox_binary') ? compiledBinary() : Promise.resolve(''),
  startBenchCluster(),
])
const probes: Probe[] = []
const systems: BenchSystem[] = []
let binary: ReturnType<typeof outboxBinarySystem> | null = null
try {
  for (const key of keys) {
    await cluster.createDatabase(key)
    const probe = await openProbe(cluster.probeUrl(key))
    probes.push(probe)
    const url = cluster.url(key)
    let sys: BenchSystem
    if (key === 'outbox_binary') {
      binary = outboxBinarySystem(key, url, probe, bin, 'graph')
      sys = binary
    } else sys = await placedSystem(key, url, probe)
    await sys.prepare()
    await sys.reset()
    systems.push(sys)
  }
  await Promise.all(systems.map((s) => s.start({ concurrency: 10 })))
  const t0 = performance.now()
  const get = (path: string) => {
    const port = binary?.lastRun()?.port
    return port
      ? fetch(`http://127.0.0.1:${port}${path}`)
          .then((r) => r.text())
          .catch(() => '')
      : Promise.resolve('')
  }
  const until = (s: number) => Bun.sleep(Math.max(0, t0 + s * 1000 - performance.now()))
  // Each system's top-level statements so far, as the suite counts them (bench_probe's left out).
  const counts = async () => {
    const r = await cluster.admin.query<{ db: string; n: string }>(
      `select d.datname as db, coalesce(sum(s.calls), 0) as n from pg_stat_statements s
         join pg_database d on d.oid = s.dbid join pg_roles u on u.oid = s.userid
        where d.datname = any($1) and u.rolname <> 'bench_probe' group by d.datname`,
      [systems.map((s) => s.database)],
    )
    const byDb = new Map(r.rows.map((x) => [x.db, Number(x.n)]))
    return systems.map((s) => byDb.get(s.database) ?? 0)
  }
  // Each system's statements by text, to say which ones the span's count is made of.
  const byStatement = async () => {
    const r = await cluster.admin.query<{ db: string; q: string; n: string }>(
      `select d.datname as db, s.query as q, sum(s.calls) as n from pg_stat_statements s
         join pg_database d on d.oid = s.dbid join pg_roles u on u.oid = s.userid
        where d.datname = any($1) and u.rolname <> 'bench_probe' group by d.datname, s.query`,
      [systems.map((s) => s.database)],
    )
    return new Map(r.rows.map((x) => [`${x.db}\u0000${x.q}`, Number(x.n)]))
  }
  await get('/metrics')
  await until(WARMUP_S)
  // Every 15 s from the window's start: a window's count first (at its boundary, before the polls
  // that belong to the next window), then Fly's check and scrape, as the suite does.
  const marks: number[][] = []
  const statementMarks: Map<string, number>[] = []
  for (let tick = 0; WARMUP_S + tick * FLY_CHECK_S <= seconds; tick++) {
    await until(WARMUP_S + tick * FLY_CHECK_S)
    if ((tick * FLY_CHECK_S) % WINDOW_S === 0) {
      marks.push(await counts())
      statementMarks.push(await byStatement())
    }
    if (phaseS > 0) await until(WARMUP_S + tick * FLY_CHECK_S + phaseS)
    await get('/readyz')
    await get('/metrics')
  }
  const spanS = (marks.length - 1) * WINDOW_S
  console.log(
    `Top-level statements per ${WINDOW_S} s window from ${WARMUP_S} s after the start (the suite's window is the first), and per second over ${spanS} s${phaseS > 0 ? `; the binary's check and scrape ${phaseS} s into each 15 s tick` : ''}:`,
  )
  systems.forEach((s, i) => {
    const windows = marks.slice(1).map((m, w) => m[i]! - marks[w]![i]!)
    const total = marks.at(-1)![i]! - marks[0]![i]!
    console.log(
      `${s.name}: ${windows.join(' ')}; suite's window ${fmt(windows[0]! / WINDOW_S, 3)}/s, over ${spanS} s ${fmt(total / spanS, 3)}/s`,
    )
  })
  const statementsBefore = statementMarks[0]!
  const statementsAfter = statementMarks.at(-1)!
  console.log(`Statements by text over the ${spanS} s (calls, the text's first 160 characters):`)
  for (const s of systems) {
    const rows = [...statementsAfter]
      .filter(([k]) => k.startsWith(`${s.database}\u0000`))
      .map(([k, n]) => ({
        q: k.slice(s.database.length + 1),
        n: n - (statementsBefore.get(k) ?? 0),
      }))
      .filter((x) => x.n > 0)
      .sort((a, b) => b.n - a.n)
    console.log(`${s.name}:`)
    for (const x of rows)
      console.log(`  ${String(x.n).padStart(4)}  ${x.q.replace(/\s+/g, ' ').slice(0, 160)}`)
  }
} finally {
  for (const s of systems) await s.stop().catch(() => {})
  for (const s of systems) await s.dispose?.().catch(() => {})
  for (const p of probes) await p.close().catch(() => {})
  await cluster.stop()
}
