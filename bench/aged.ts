// `bun run bench/aged.ts [kept] [reps] [rows] [textBytes]`: the engine on an empty outbox against one that keeps a long history.
//
// outbox-mailer keeps every finished row and its attempt history (graphile-worker and pg-boss delete
// or archive theirs), so a deployment's outbox only grows. This puts the engine on two databases of
// one cluster: one emptied before every run, as `bun run bench` does, and one holding `kept` sent
// rows (default 1,000,000, each with its attempt row and a message whose text body is `textBytes`
// hex digits, default 80), to which the drained rows are added and which only autovacuum cleans.
// The two take turns: drains of `rows` at concurrency 10 and 50 (`reps` each), then, once autovacuum
// has cleaned up after them (at most 150 s), pickup windows (50 rows/s, 3 s, `reps` rounds).
// It prints the disk a kept row takes (heap, TOAST, indexes, attempt history) and both sides'
// figures; the claim's and the settlement's mean execution time come from pg_stat_statements.
import { startBenchCluster } from './cluster.ts'
import { type DrainRun, drainRun } from './drain.ts'
import { inImageEnv } from './image-env.ts'
import { fillKept } from './kept-rows.ts'
import { latencyWindow, poolWindows } from './latency.ts'
import { fmt, fmtPickup, med } from './report.ts'
import { systemByKey } from './systems/by-key.ts'
import { hostedSystem, OWN_PROCESSES } from './systems/hosted.ts'
import { openProbe, type Probe } from './systems/probe.ts'
import type { BenchSystem } from './systems/system.ts'
import { rotated } from './turns.ts'

await inImageEnv()
const [kept, reps, rows, textBytes] = [1_000_000, 3, 20_000, 80].map((d, i) => {
  const arg = process.argv[2 + i]
  const n = arg === undefined ? d : Number(arg)
  if (!Number.isInteger(n) || n < (i === 0 ? 0 : 1)) {
    console.error(`usage: bun run bench/aged.ts [kept ≥ 0] [reps ≥ 1] [rows ≥ 1] [textBytes ≥ 1]`)
    process.exit(2)
  }
  return n
}) as [number, number, number, number]

const CAP_MS = 60_000
// autovacuum_naptime is 60 s: one launcher round and the vacuum itself.
const AUTOVACUUM_WAIT_MS = 150_000
const FRESH = 'outbox_engine'
const AGED = 'outbox_aged'

const SIZES = `
  select c.relname as name, pg_relation_size(c.oid) as main,
         coalesce(pg_total_relation_size(c.reltoastrelid), 0) as toast,
         pg_indexes_size(c.oid) as indexes
    from pg_class c
   where c.oid in ('mailer.email_outbox'::regclass, 'mailer.email_attempts'::regclass)
   order by c.relname desc`

const cluster = await startBenchCluster()
const probes: Probe[] = []
const systems: BenchSystem[] = []
try {
  for (const db of [FRESH, AGED]) {
    await cluster.createDatabase(db)
    probes.push(await openProbe(cluster.probeUrl(db)))
  }
  const [freshProbe, agedProbe] = probes as [Probe, Probe]
  const fresh = await systemByKey('outbox_engine', cluster.url(FRESH), freshProbe)
  const agedInner = await systemByKey('outbox_engine', cluster.url(AGED), agedProbe)
  // Never emptied, never vacuumed by hand: autovacuum keeps it, as in a deployment (the table's own
  // thresholds, 2 % of its rows). A drain still waits until no autovacuum worker runs (drain.ts).
  const aged: BenchSystem = {
    ...agedInner,
    name: `outbox-mailer engine, ${kept.toLocaleString('en-US')} rows kept`,
    database: AGED,
    reset: async () => {},
  }
  for (const [db, sys] of [
    [FRESH, fresh],
    [AGED, aged],
  ] as const) {
    const placed = OWN_PROCESSES ? hostedSystem('outbox_engine', cluster.url(db), sys) : sys
    await placed.prepare()
    systems.push(placed)
  }

  const fillS = await fillKept(agedProbe, { kept, textBytes })
  await cluster.admin.query('checkpoint')
  const sizes = await agedProbe.query<{
    name: string
    main: string
    toast: string
    indexes: string
  }>(SIZES)
  console.log(
    `\n${kept.toLocaleString('en-US')} sent rows kept (text body ${textBytes} B), filled in ${fillS.toFixed(0)} s; bytes per kept row:\n`,
  )
  console.log('| table | heap | TOAST | indexes | total |')
  console.log('| --- | --- | --- | --- | --- |')
  let sum = 0
  for (const s of sizes) {
    const [main, toast, indexes] = [s.main, s.toast, s.indexes].map(
      (v) => Number(v) / Math.max(1, kept),
    ) as [number, number, number]
    sum += main + toast + indexes
    console.log(
      `| ${s.name} | ${main.toFixed(0)} | ${toast.toFixed(0)} | ${indexes.toFixed(0)} | ${(main + toast + indexes).toFixed(0)} |`,
    )
  }
  console.log(`| both | | | | ${sum.toFixed(0)} |`)

  // Warm code and caches on both sides before anything is measured.
  for (const sys of systems) await drainRun(cluster, sys, rows, 10, CAP_MS)
  await cluster.admin.query('select pg_stat_statements_reset()')

  const drains = new Map<string, DrainRun[]>()
  for (let rep = 0; rep < reps; rep++) {
    for (const c of [10, 50]) {
      for (const sys of rotated(systems, rep)) {
        const r = await drainRun(cluster, sys, rows, c, CAP_MS)
        const list = drains.get(`${sys.database} c${c}`) ?? []
        list.push(r)
        drains.set(`${sys.database} c${c}`, list)
        console.error(`${sys.name} c${c}: ${Math.round(r.rowsPerSecond)} rows/s`)
      }
    }
  }
  const statements = await cluster.admin.query<{
    db: string
    calls: string
    mean: number
    query: string
  }>(
    `select d.datname as db, s.calls, s.mean_exec_time as mean, s.query
       from pg_stat_statements s join pg_database d on d.oid = s.dbid join pg_roles u on u.oid = s.userid
      where d.datname = any($1) and u.rolname <> 'bench_probe'
        and (s.query like '%claim_batch%' or s.query like '%mark_sent%')`,
    [[FRESH, AGED]],
  )

  // The drains left their dead versions in the kept table, and every claim walks over their claim-index
  // entries until a vacuum cleans them (0008_outbox_vacuum). A deployment's pickups come long after
  // such a burst, so the windows wait (bounded) for autovacuum to have been by, as it would have.
  const waitedS = await autovacuumCaughtUp(agedProbe, AUTOVACUUM_WAIT_MS)
  console.log(
    waitedS === null
      ? `autovacuum had not cleaned the kept table after ${AUTOVACUUM_WAIT_MS / 1000} s; pickups measured anyway`
      : `autovacuum cleaned the kept table ${waitedS.toFixed(0)} s after the drains`,
  )

  const windows = new Map<string, Awaited<ReturnType<typeof latencyWindow>>[]>()
  for (let round = 0; round < reps; round++) {
    for (const sys of rotated(systems, round)) {
      const w = await latencyWindow(sys, { perSecond: 50, seconds: 3, concurrency: 10 })
      windows.set(sys.database, [...(windows.get(sys.database) ?? []), w])
    }
  }

  const meanMs = (db: string, fn: string) => {
    const s = statements.rows.find((r) => r.db === db && r.query.includes(fn))
    return s ? `${fmt(s.mean, 2)} (${s.calls})` : '–'
  }
  console.log(
    `\nDrains of ${fmt(rows)} rows (medians of ${reps}), pickup at 50 rows/s (${reps} windows of 3 s, pooled), the two taking turns:\n`,
  )
  console.log(
    '| outbox | drain c10 · c50 rows/s | PG CPU µs/row c10 · c50 | WAL B/row c10 · c50 | claim · settlement mean ms (calls) | pickup p50 / p95 / p99 / max ms |',
  )
  console.log('| --- | --- | --- | --- | --- | --- |')
  const footnotes: string[] = []
  for (const sys of systems) {
    const both = (f: (r: DrainRun) => number) =>
      [10, 50].map((c) => fmt(med(drains.get(`${sys.database} c${c}`), f))).join(' · ')
    const p = poolWindows(windows.get(sys.database) ?? [])
    const pickup = [p.p50, p.p95, p.p99, p.max].map(fmtPickup).join(' / ')
    const statementMeans = `${meanMs(sys.database, 'claim_batch')} · ${meanMs(sys.database, 'mark_sent')}`
    console.log(
      `| ${sys.name} | ${both((r) => r.rowsPerSecond)} | ${both((r) => r.cpuMicrosPerRow)} | ${both((r) => r.walBytesPerRow)} | ${statementMeans} | ${pickup}${p.missing > 0 ? ` (${p.missing} missing)` : ''} |`,
    )
    const rates = [10, 50].map((c) =>
      (drains.get(`${sys.database} c${c}`) ?? []).map((r) => fmt(r.rowsPerSecond)).join(' / '),
    )
    const slowest = p.slowest.map((x) => `${fmt(x.ms, 1)} (${x.round}.${x.row})`)
    footnotes.push(
      `${sys.database}: drains ${rates.join(' · ')} rows/s; slowest pickups (round.row) ${slowest.join(', ')} ms`,
    )
  }
  console.log(`\n${footnotes.join('.\n')}.`)
} finally {
  for (const sys of systems) await sys.dispose?.()
  for (const probe of probes) await probe.close()
  await cluster.stop()
}

/**
 * Seconds until the kept table's dead versions fell under its own autovacuum threshold (the table's
 * setting, 0008_outbox_vacuum, else the server's), or null if not within `maxMs`.
 */
async function autovacuumCaughtUp(probe: Probe, maxMs: number): Promise<number | null> {
  const t0 = performance.now()
  while (performance.now() - t0 < maxMs) {
    const r = await probe.query<{ clean: boolean }>(
      `select s.n_dead_tup < coalesce(
                (select o.option_value::bigint from pg_options_to_table(c.reloptions) o
                  where o.option_name = 'autovacuum_vacuum_threshold'),
                current_setting('autovacuum_vacuum_threshold')::bigint) as clean
         from pg_stat_user_tables s join pg_class c on c.oid = s.relid
        where s.relid = 'mailer.email_outbox'::regclass`,
    )
    if (r[0]?.clean !== false) return (performance.now() - t0) / 1000
    await Bun.sleep(1000)
  }
  return null
}
