// `bun run bench/vacuum-cost.ts [kept] [reps]`: what one vacuum of a kept outbox costs, with and without 0010's correlation index.
//
// Since 0008 the outbox is vacuumed, indexes included, every 10,000 dead row versions (about 5,000
// mails), and a vacuum reads every index of the table whole. So each index costs every run its
// size, which grows with the rows kept. Two databases of one cluster each keep `kept` sent rows
// (default 1,000,000, 80-byte text bodies, each with its own correlation id, as bench/kept-rows.ts
// fills them); one has 0010's index dropped. Autovacuum is off on both. They take turns `reps` times
// (default 4): 5,000 mails with correlation ids inserted, claimed and settled as the engine leaves
// them (two updates each: 10,000 dead versions), then one `VACUUM` timed (wall clock, the backend's
// CPU from /proc in 10 ms ticks, and the index pages VERBOSE reports).
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import { silentLogger } from '../src/log.ts'
import { startBenchCluster } from './cluster.ts'
import { fillKept } from './kept-rows.ts'
import { median } from './percentiles.ts'
import { fmt } from './report.ts'
import { backendCpuSeconds } from './server-stats.ts'
import { openProbe } from './systems/probe.ts'

const [kept, reps] = [1_000_000, 4].map((d, i) => {
  const arg = process.argv[2 + i]
  const n = arg === undefined ? d : Number(arg)
  if (!Number.isInteger(n) || n < 1) {
    console.error('usage: bun run bench/vacuum-cost.ts [kept ≥ 1] [reps ≥ 1]')
    process.exit(2)
  }
  return n
}) as [number, number]

const MAILS = 5_000
const variants = [
  { name: 'with 0010 (now)', db: 'vacuum_now', dropIndex: false },
  { name: 'without it (before round 18)', db: 'vacuum_before', dropIndex: true },
]

const cluster = await startBenchCluster()
const clients: pg.Client[] = []
try {
  const subjects = []
  for (const v of variants) {
    await cluster.createDatabase(v.db)
    await migrate({ url: cluster.url(v.db), log: silentLogger })
    const probe = await openProbe(cluster.probeUrl(v.db))
    await fillKept(probe, { kept, textBytes: 80 })
    await probe.close()
    const c = new pg.Client({ connectionString: cluster.url(v.db), application_name: 'bench:vac' })
    await c.connect()
    clients.push(c)
    await c.query('alter table mailer.email_outbox set (autovacuum_enabled = off)')
    if (v.dropIndex) await c.query('drop index mailer.email_outbox_correlation_idx')
    await c.query('vacuum analyze mailer.email_outbox')
    const pid = (await c.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
    const sizes = await c.query<{ name: string; mb: number }>(
      `select c.relname as name, pg_relation_size(c.oid) / 1048576.0 as mb from pg_class c
        where c.relnamespace = 'mailer'::regnamespace and c.relkind = 'i'
          and c.relname like 'email_outbox%' order by 2 desc`,
    )
    const runs: { ms: number; cpuMs: number; indexPages: number }[] = []
    subjects.push({ ...v, c, pid, sizes: sizes.rows, runs })
  }

  for (let rep = 0; rep < reps; rep++) {
    for (const s of subjects) {
      await s.c.query(
        `insert into mailer.email_outbox (message, correlation_id)
         select '{"to":[{"address":"a@example.com"}],"subject":"s","text":"t"}'::jsonb,
                'new-' || $1::int || '-' || g
           from generate_series(1, $2::int) g`,
        [rep, MAILS],
      )
      await s.c.query(
        `update mailer.email_outbox
            set status = 'sending', attempts = 1, lease_token = gen_random_uuid(),
                lease_expires_at = now() + interval '1 minute', send_started_at = now()
          where status = 'pending'`,
      )
      await s.c.query(
        `update mailer.email_outbox
            set status = 'sent', sent_at = now(), lease_token = null, lease_expires_at = null
          where status = 'sending'`,
      )
      const notices: string[] = []
      const onNotice = (m: { message?: string }) => notices.push(String(m.message))
      s.c.on('notice', onNotice)
      const cpu0 = await backendCpuSeconds(s.pid)
      const t0 = performance.now()
      await s.c.query('vacuum (verbose) mailer.email_outbox')
      const ms = performance.now() - t0
      const cpuMs = ((await backendCpuSeconds(s.pid)) - cpu0) * 1000
      s.c.off('notice', onNotice)
      // VERBOSE: `index "email_outbox_pkey": pages: 2857 in total, …` per index of the outbox.
      const indexPages = [...notices.join('\n').matchAll(/index "email_outbox\w*": pages: (\d+)/g)]
        .map((m) => Number(m[1]))
        .reduce((a, b) => a + b, 0)
      s.runs.push({ ms, cpuMs, indexPages })
    }
  }

  console.log(
    `\n${fmt(kept)} sent rows kept (80-byte bodies, each with a correlation id); per run ${fmt(MAILS)} mails (10,000 dead versions), then one VACUUM; ${reps} runs each, taking turns\n`,
  )
  console.log(
    '| outbox | VACUUM ms (median; each run) | CPU ms (sum of runs) | index pages read | index sizes |',
  )
  console.log('| --- | --- | --- | --- | --- |')
  for (const s of subjects) {
    console.log(
      `| ${s.name} | ${fmt(median(s.runs.map((r) => r.ms)))} (${s.runs.map((r) => fmt(r.ms)).join(', ')}) | ${fmt(
        s.runs.reduce((a, r) => a + r.cpuMs, 0),
      )} | ${fmt(median(s.runs.map((r) => r.indexPages)))} | ${s.sizes
        .filter((x) => Number(x.mb) >= 1)
        .map((x) => `${x.name.replace('email_outbox_', '')} ${fmt(Number(x.mb), 1)} MiB`)
        .join(', ')} |`,
    )
  }
} finally {
  for (const c of clients) await c.end().catch(() => {})
  await cluster.stop()
}
