// `bun run bench/token-outage.ts [rows] [cycles]`: what an Entra outage costs the database, per backoff cycle and per row.
//
// The worker as `serve` wires Graph (shared send gate, no pacing, WORKER_CONCURRENCY 10) drains
// `rows` rows while the fake Entra answers 500; its token source runs on a manual clock, so each
// of the `cycles` backoff cycles (1 s doubling to 5 minutes in production) passes at once, and the
// rows' waits are made due with it (test/support/token-outage.ts). Counts the worker's statements
// (pg_stat_statements; the driver's own enqueues and checks run as bench_probe and are left out),
// the cluster's WAL, claimed rows and history rows.
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import { openDb } from '../src/db/open.ts'
import { silentLogger } from '../src/log.ts'
import type { TestDb } from '../test/support/db.ts'
import { generateTestCertificate } from '../test/support/fake-graph.ts'
import { outageCycle, startOutage } from '../test/support/token-outage.ts'
import { startBenchCluster } from './cluster.ts'

const rows = Number(process.argv[2] ?? 200)
const cycles = Number(process.argv[3] ?? 20)
const cluster = await startBenchCluster()
const name = 'outbox_outage'
await cluster.createDatabase(name)
await migrate({ url: cluster.url(name), log: silentLogger })
const handle = openDb({ name: 'bench', url: cluster.url(name), log: silentLogger })
const probePool = new pg.Pool({ connectionString: cluster.probeUrl(name), max: 2 })
const t = { ...handle, url: cluster.url(name), pool: probePool } as unknown as TestDb
const cert = await generateTestCertificate()
try {
  const run = await startOutage(t, { rows, cert, config: { pollIntervalSeconds: 30 } })
  const lsn = async () =>
    (await cluster.admin.query<{ l: string }>('select pg_current_wal_lsn()::text as l')).rows[0]!.l
  // From the first cycle's start: the enqueues are behind us, the outage ahead.
  await cluster.admin.query('select pg_stat_statements_reset()')
  const from = await lsn()
  for (let k = 1; k <= cycles; k++) await outageCycle(t, run, k)
  const to = await lsn()
  const stmts = await cluster.admin.query<{ calls: string; q: string }>(
    `select sum(s.calls)::bigint as calls, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 90) as q
       from pg_stat_statements s join pg_database d on d.oid = s.dbid join pg_roles u on u.oid = s.userid
      where d.datname = $1 and u.rolname <> 'bench_probe' group by 2 order by 1 desc`,
    [name],
  )
  const wal = await cluster.admin.query<{ b: string }>(
    'select pg_wal_lsn_diff($2::pg_lsn, $1::pg_lsn)::bigint as b',
    [from, to],
  )
  const history = await probePool.query<{ n: string }>(
    'select count(*) as n from mailer.email_attempts',
  )
  const calls = stmts.rows.reduce((s, r) => s + Number(r.calls), 0)
  const per = (n: number, d: number) => (n / d).toFixed(2)
  console.log(
    `[token-outage] rows=${rows} cycles=${cycles} token_requests=${run.fake.tokenRequests.length} ` +
      `statements=${calls} (${per(calls, cycles)}/cycle, ${per(calls, rows * cycles)}/row/cycle) ` +
      `rows_claimed=${run.claims.rows} (${per(run.claims.rows, rows)}/row) claims=${run.claims.statements} ` +
      `history=${history.rows[0]!.n} (${per(Number(history.rows[0]!.n), rows)}/row) ` +
      `wal_bytes=${wal.rows[0]!.b} (${per(Number(wal.rows[0]!.b), cycles)}/cycle)`,
  )
  console.table(stmts.rows.slice(0, 12))
  await run.stop()
} finally {
  await probePool.end()
  await handle.close()
  await cluster.stop()
}
