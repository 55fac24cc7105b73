// `bun run bench/profile.ts [system] [rows] [concurrency]`: one drain, then the statements it cost (pg_stat_statements).
import { startBenchCluster } from './cluster.ts'
import { drainRun } from './drain.ts'
import { inImageEnv } from './image-env.ts'
import { checkSystemKeys, systemByKey } from './systems/by-key.ts'
import { openProbe } from './systems/probe.ts'

await inImageEnv()
const [which = 'outbox_engine', rows = '20000', conc = '10'] = process.argv.slice(2)
checkSystemKeys([which])
const cluster = await startBenchCluster()
await cluster.createDatabase(which)
const probe = await openProbe(cluster.probeUrl(which))
try {
  const url = cluster.url(which)
  const sys = await systemByKey(which, url, probe)
  await sys.prepare()
  // One warm-up drain first, so the figures below are of warm code (as in the interleaved suite).
  await drainRun(cluster, sys, Number(rows), Number(conc), 60_000)
  await cluster.admin.query('select pg_stat_statements_reset()')
  const r = await drainRun(cluster, sys, Number(rows), Number(conc), 60_000)
  console.log(JSON.stringify(r, null, 1))
  const top = await cluster.admin.query(
    `select s.calls, round(s.total_exec_time::numeric, 1) as total_ms, round(s.mean_exec_time::numeric, 3) as mean_ms,
            s.rows, s.shared_blks_hit as hit, s.shared_blks_dirtied as dirtied, s.wal_bytes, s.wal_fpi,
            left(regexp_replace(s.query, '\\s+', ' ', 'g'), 110) as query
       from pg_stat_statements s join pg_database d on d.oid = s.dbid join pg_roles u on u.oid = s.userid
      where d.datname = $1 and u.rolname <> 'bench_probe' order by s.total_exec_time desc limit 12`,
    [which],
  )
  console.table(top.rows)
  // Where the WAL went, by record type and relation (pg_walinspect), per drained row; a record that
  // touches several blocks counts for its first. The names come from the system's own database.
  await cluster.admin.query('create extension if not exists pg_walinspect')
  const wal = await cluster.admin.query<{ relfilenode: string }>(
    `with recs as (
       select distinct on (start_lsn) resource_manager as rmgr, record_type as type, record_length,
              sum(block_fpi_length) over (partition by start_lsn) as fpi_length, relfilenode
         from pg_get_wal_block_info($1::pg_lsn, $2::pg_lsn) order by start_lsn, block_id)
     select rmgr, type, relfilenode::text, count(*)::int as records,
            round(avg(record_length), 1) as avg_length,
            round(sum(record_length)::numeric / $3, 1) as bytes_per_row,
            round(sum(fpi_length)::numeric / $3, 1) as fpi_per_row
       from recs group by 1, 2, 3 order by sum(record_length) desc limit 15`,
    [r.wal.from, r.wal.to, r.rows],
  )
  const names = new Map(
    (
      await probe.query<{ n: string; name: string }>(
        'select relfilenode::text as n, relname as name from pg_class where relfilenode = any($1::oid[])',
        [wal.rows.map((w) => w.relfilenode)],
      )
    ).map((x) => [x.n, x.name]),
  )
  console.table(
    wal.rows.map(({ relfilenode, ...w }) => ({
      ...w,
      relation: names.get(relfilenode) ?? relfilenode,
    })),
  )
  // Heap records by length: an update whose new version found no room on its page logs the whole
  // row (and a lock) instead of its changed tail, which shows here as a second, longer UPDATE length.
  const lengths = await cluster.admin.query(
    `select record_type as type, record_length as length, count(*)::int as records
       from pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn) where resource_manager = 'Heap'
      group by 1, 2 order by 3 desc limit 8`,
    [r.wal.from, r.wal.to],
  )
  console.table(lengths.rows)
  await sys.dispose?.()
} finally {
  await probe.close()
  await cluster.stop()
}
