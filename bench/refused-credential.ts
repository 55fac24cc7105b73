// `bun run bench/refused-credential.ts [rows] [cycles] [bulk|named]`: what a refused Graph credential's waiting rows cost the database, per refusal and per row.
//
// Entra refuses the certificate (AADSTS700027) for good: the worker as `serve` wires Graph (shared
// send gate, WORKER_CONCURRENCY 10) claims one batch per refusal cooldown (a minute), which goes
// back unsent, and names the due rows the refusal holds (src/outbox/waiting-rows.ts, at most 1,000
// per refusal). `rows` rows are due at once (the driver's own update, before counting); each of
// `cycles` cycles passes the cooldown on the token source's manual clock, wakes the worker, and
// waits until its statements stop (the row-update count steady for 12 s: a backend flushes its
// statistics within 10 s of going idle). Counts the worker's statements (pg_stat_statements; the
// driver's own as bench_probe are left out), the cluster's WAL, the outbox's row updates and the
// rows still not naming the refusal, per cycle, and each cycle's mark statements (their time, the
// rows they read). `bulk`: the rows are inserted by one enqueue_email statement rather than one by
// one (a backlog of 200,000 in seconds, not many minutes); `named`: so, and every row already carries
// the refusal's code, as after the refusal's first hours (what each mark then reads for nothing). Runs unchanged against an older tree
// (copy it there): only src/ and test/support/ differ.
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import { openDb } from '../src/db/open.ts'
import { silentLogger } from '../src/log.ts'
import type { TestDb } from '../test/support/db.ts'
import { pollUntil } from '../test/support/events.ts'
import { generateTestCertificate } from '../test/support/fake-graph.ts'
import { startOutage } from '../test/support/token-outage.ts'
import { startBenchCluster } from './cluster.ts'

const rows = Number(process.argv[2] ?? 2000)
const cycles = Number(process.argv[3] ?? 5)
const named = process.argv[4] === 'named'
const bulk = named || process.argv[4] === 'bulk'
const REFUSED = { status: 401, error: 'invalid_client', aadsts: 700027 }
const cluster = await startBenchCluster()
const name = 'outbox_refused'
await cluster.createDatabase(name)
await migrate({ url: cluster.url(name), log: silentLogger })
const handle = openDb({ name: 'bench', url: cluster.url(name), log: silentLogger })
const probePool = new pg.Pool({ connectionString: cluster.probeUrl(name), max: 2 })
const t = { ...handle, url: cluster.url(name), pool: probePool } as unknown as TestDb
const cert = await generateTestCertificate()
const one = async (text: string) => Number((await probePool.query(text)).rows[0]!.n)
const updates = () =>
  one(
    `select n_tup_upd as n from pg_stat_user_tables where relid = 'mailer.email_outbox'::regclass`,
  )
const unnamed = () =>
  one(
    `select count(*) as n from mailer.email_outbox
      where status = 'pending' and last_error_code is distinct from 'AADSTS700027'`,
  )
const lsn = async () =>
  (await cluster.admin.query<{ l: string }>('select pg_current_wal_lsn()::text as l')).rows[0]!.l
const walSince = async (from: string) =>
  Number(
    (
      await cluster.admin.query<{ b: string }>(
        'select pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint as b',
        [from],
      )
    ).rows[0]!.b,
  )
/** The worker's mark statements so far (src/outbox/waiting-rows.ts): calls, ms, buffers. */
async function marks() {
  const r = await cluster.admin.query<{ calls: string; ms: number; blks: string }>(
    `select coalesce(sum(calls), 0)::bigint as calls, coalesce(sum(total_exec_time), 0)::float8 as ms,
            coalesce(sum(shared_blks_hit + shared_blks_read), 0)::bigint as blks
       from pg_stat_statements s join pg_database d on d.oid = s.dbid
      where d.datname = $1 and s.query like '%set last_error_code = %'`,
    [name],
  )
  const x = r.rows[0]!
  return { calls: Number(x.calls), ms: Number(x.ms), blks: Number(x.blks) }
}
/** The statistics a backend flushes at most once a second: steady for 12 s means the worker is done. */
async function settled() {
  let last = -1
  let same = 0
  while (same < 12) {
    await Bun.sleep(1000)
    const n = await updates()
    same = n === last ? same + 1 : 0
    last = n
  }
  return last
}
try {
  const run = await startOutage(t, {
    rows: bulk ? 0 : rows,
    cert,
    tokenFault: REFUSED,
    config: { pollIntervalSeconds: 30 },
    // Not due while they are enqueued one by one (a claim would take the first few alone).
    options: () => ({ sendAt: new Date(Date.now() + 3600_000).toISOString() }),
  })
  if (bulk)
    await probePool.query(
      `select mailer.enqueue_email('{"to":"rcpt@example.com","subject":"Hello","text":"Hi there"}'::jsonb,
              jsonb_build_object('sendAt', now() + interval '1 hour'))
         from generate_series(1, $1::int)`,
      [rows],
    )
  await probePool.query(
    `update mailer.email_outbox set send_at = now() - interval '1 hour' + id * interval '1 millisecond'
      ${named ? `, last_error_code = 'AADSTS700027', last_error = 'AADSTS700027: refused'` : ''}`,
  )
  // As autovacuum leaves a table between refusals: the update's old versions gone.
  await handle.pool.query('vacuum analyze mailer.email_outbox')
  await cluster.admin.query('select pg_stat_statements_reset()')
  let upd0 = await settled()
  const table: Record<string, number | string>[] = []
  const started = await lsn()
  const upd00 = upd0
  for (let k = 1; k <= cycles; k++) {
    const from = await lsn()
    const m0 = await marks()
    if (k > 1) run.clock.advance(61_000)
    run.engine.drainer.wake()
    await pollUntil(async () => (run.fake.tokenRequests.length >= k ? true : undefined), 60_000)
    const upd = await settled()
    const m1 = await marks()
    table.push({
      marks: m1.calls - m0.calls,
      'mark ms': (m1.ms - m0.ms).toFixed(1),
      'mark buffers': m1.blks - m0.blks,
      cycle: k,
      row_updates: upd - upd0,
      'updates/row': ((upd - upd0) / rows).toFixed(3),
      'WAL/row': `${((await walSince(from)) / rows).toFixed(1)} B`,
      rows_not_naming_it: await unnamed(),
    })
    upd0 = upd
  }
  const stmts = await cluster.admin.query<{ calls: string; ms: string; q: string }>(
    `select sum(s.calls)::bigint as calls, round(sum(s.total_exec_time)::numeric, 1) as ms,
            left(regexp_replace(s.query, '\\s+', ' ', 'g'), 80) as q
       from pg_stat_statements s join pg_database d on d.oid = s.dbid join pg_roles u on u.oid = s.userid
      where d.datname = $1 and u.rolname <> 'bench_probe' group by 3 order by 1 desc`,
    [name],
  )
  const calls = stmts.rows.reduce((s, r) => s + Number(r.calls), 0)
  console.log(
    `[refused-credential] rows=${rows} cycles=${cycles} token_requests=${run.fake.tokenRequests.length} ` +
      `statements=${calls} (${(calls / cycles).toFixed(1)}/cycle) row_updates=${upd0 - upd00} ` +
      `(${((upd0 - upd00) / rows).toFixed(3)}/row over the refusal) wal=${await walSince(started)} B`,
  )
  console.table(table)
  console.table(stmts.rows.slice(0, 10))
  await run.stop()
} finally {
  await probePool.end()
  await handle.close()
  await cluster.stop()
}
