// `bun run bench/drain-backends.ts [reps] [rows] [concurrencies] [systems]`: each drain's Postgres CPU by server process and its statements, the systems taking turns.
//
// bench/drain-turns.ts gives a drain's Postgres CPU per row as one sum. This splits it: the
// database's backends open before the rows were inserted (a pool's, a LISTEN session's), those
// opened during the drain (a new backend's start and first plans), and the shared processes (WAL
// writer, checkpointer, postmaster); and lists what each drain ran (pg_stat_statements: calls,
// rows per call, execution time, shared buffers per row), so that two concurrencies or two systems
// are seen to run the same statements, or not. Round 53 (drain53).
import type { BenchCluster } from './cluster.ts'
import { inImageEnv } from './image-env.ts'
import { loadAverage } from './load-average.ts'
import { median } from './percentiles.ts'
import { withPlacedSystems } from './placed-systems.ts'
import { snapshot } from './server-stats.ts'
import { checkSystemKeys } from './systems/by-key.ts'
import type { BenchSystem } from './systems/system.ts'
import { rotated } from './turns.ts'

await inImageEnv()
const reps = Number(process.argv[2] ?? 4)
const rows = Number(process.argv[3] ?? 20_000)
const concurrencies = (process.argv[4] ?? '10,50').split(',').map(Number)
const keys = (process.argv[5] ?? 'graphile_batched,outbox_engine').split(',')
checkSystemKeys(keys)

interface Drained {
  key: string
  c: number
  rate: number
  /** µs per row: every process, those open before the insert, those opened during the drain, the shared ones. */
  pg: { all: number; open: number; opened: number; shared: number }
  opened: number
  client: number
}
const drained: Drained[] = []

// The database's own server processes (not the benchmark's probe), sampled through the drain.
async function databasePids(cluster: BenchCluster, db: string): Promise<Set<number>> {
  const r = await cluster.admin.query<{ pid: number }>(
    `select pid from pg_stat_activity
      where datname = $1 and usename <> 'bench_probe' and application_name not like 'bench:%'`,
    [db],
  )
  return new Set(r.rows.map((x) => x.pid))
}

async function drain(
  cluster: BenchCluster,
  key: string,
  sys: BenchSystem,
  c: number,
  capMs: number,
  kept: boolean,
) {
  await sys.reset()
  let handled = 0
  await sys.start({ concurrency: c, onStart: () => handled++ })
  try {
    await Bun.sleep(500)
    const a = await snapshot(cluster.admin, cluster.postmasterPid, sys.database)
    await cluster.admin.query('select pg_stat_statements_reset()')
    const open = await databasePids(cluster, sys.database)
    const seen = new Set(open)
    await sys.insertBulk(rows)
    const cpu0 = (await sys.clientCpuMicros?.()) ?? 0
    const t0 = performance.now()
    while (performance.now() - t0 < capMs) {
      for (const pid of await databasePids(cluster, sys.database)) seen.add(pid)
      if (handled < rows) await Bun.sleep(5)
      else if ((await sys.remaining()) === 0) break
    }
    const t1 = performance.now()
    const client = ((await sys.clientCpuMicros?.()) ?? 0) - cpu0
    const b = await snapshot(cluster.admin, cluster.postmasterPid, sys.database)
    if (!kept) return
    const pg = { all: 0, open: 0, opened: 0, shared: 0 }
    const each: number[] = []
    for (const [pid, t] of b.cpuByPid) {
      const us = ((t - (a.cpuByPid.get(pid) ?? 0)) * 1e6) / rows
      pg.all += us
      if (open.has(pid)) pg.open += us
      else if (seen.has(pid)) pg.opened += us
      else pg.shared += us
      if (seen.has(pid)) each.push((us * rows) / 1000)
    }
    const d: Drained = {
      key,
      c,
      rate: rows / ((t1 - t0) / 1000),
      pg,
      opened: [...seen].filter((p) => !open.has(p)).length,
      client: client / rows,
    }
    drained.push(d)
    const st = await cluster.admin.query<{
      calls: string
      rows: string
      ms: number
      hit: string
      query: string
    }>(
      `select s.calls, s.rows, s.total_exec_time::float8 as ms, s.shared_blks_hit as hit, s.query
         from pg_stat_statements s join pg_database d on d.oid = s.dbid join pg_roles u on u.oid = s.userid
        where d.datname = $1 and u.rolname <> 'bench_probe' and s.calls > 1
        order by s.total_exec_time desc limit 3`,
      [sys.database],
    )
    const statements = st.rows.map(
      (r) =>
        `${r.calls} × ${Math.round(Number(r.rows) / Number(r.calls))} rows ${Math.round(r.ms)} ms ` +
        `${(Number(r.hit) / rows).toFixed(1)} buf/row [${r.query.replace(/\s+/g, ' ').slice(0, 40)}]`,
    )
    const busiest = each
      .sort((x, y) => y - x)
      .map(Math.round)
      .join('/')
    console.error(
      `${key} c${c}: ${Math.round(d.rate)} rows/s; PG ${pg.all.toFixed(1)} µs/row = open ${pg.open.toFixed(1)} ` +
        `+ opened (${d.opened}) ${pg.opened.toFixed(1)} + shared ${pg.shared.toFixed(1)}; ` +
        `its processes ms ${busiest}; client ${d.client.toFixed(1)} µs/row\n  ${statements.join('\n  ')}`,
    )
  } finally {
    await sys.stop()
  }
}

console.log(`before: ${loadAverage()}`)
await withPlacedSystems(keys, async (cluster, systems) => {
  const placed = systems.map((sys, i) => ({ key: keys[i]!, sys }))
  for (const s of placed) await drain(cluster, s.key, s.sys, concurrencies[0]!, 3_000, false)
  for (let rep = 0; rep < reps; rep++)
    for (const c of concurrencies)
      for (const s of rotated(placed, rep)) await drain(cluster, s.key, s.sys, c, 10_000, true)
})
console.log(`${reps} drains of ${rows} rows per system and concurrency, taking turns; medians`)
for (const c of concurrencies)
  for (const key of keys) {
    const ds = drained.filter((d) => d.key === key && d.c === c)
    const m = (f: (d: Drained) => number) => median(ds.map(f)).toFixed(1)
    console.log(
      `${key} c${c}: ${m((d) => d.rate)} rows/s; PG µs/row ${m((d) => d.pg.all)} = open ${m((d) => d.pg.open)} ` +
        `+ opened (${m((d) => d.opened)}) ${m((d) => d.pg.opened)} + shared ${m((d) => d.pg.shared)}; client ${m((d) => d.client)} µs/row`,
    )
  }
console.log(`after: ${loadAverage()}`)
