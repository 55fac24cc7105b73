// `bun run bench/finished-rows.ts [kept] [textBytes] [failedEvery] [reps]`: what counting and listing finished rows read in an outbox that keeps them.
//
// /metrics recounts the finished rows every 5 minutes and every /v1/stats counts them; an operator
// lists the failed rows to review them. This fills one outbox with `kept` finished rows (default
// 1,000,000, text bodies of `textBytes` hex digits, default 1,000; one in `failedEvery` failed,
// default 1,000), frozen and analyzed as autovacuum leaves old rows, and times, the variants taking
// turns `reps` times (default 5):
// - the count as released before 0009 (one grouped scan of the table) and as the engine counts now
//   (settledCounts: indexes only);
// - the 50 newest failed rows (listOutbox) with 0009's index and without it (dropped in a
//   transaction that is rolled back).
// Time and pages (shared buffers hit + read, parallel workers included) come from pg_stat_statements.
import { type Kysely, sql, type Transaction } from 'kysely'
import { migrate } from '../src/db/migrate.ts'
import { openDb } from '../src/db/open.ts'
import type { Database } from '../src/db/schema.ts'
import { silentLogger } from '../src/log.ts'
import { listOutbox } from '../src/outbox/inspect.ts'
import { settledCounts } from '../src/outbox/stats.ts'
import { startBenchCluster } from './cluster.ts'
import { fillKept } from './kept-rows.ts'
import { median } from './percentiles.ts'
import { fmt } from './report.ts'
import { openProbe } from './systems/probe.ts'

const [kept, textBytes, failedEvery, reps] = [1_000_000, 1_000, 1_000, 5].map((d, i) => {
  const arg = process.argv[2 + i]
  const n = arg === undefined ? d : Number(arg)
  if (!Number.isInteger(n) || n < 1) {
    console.error(
      'usage: bun run bench/finished-rows.ts [kept ≥ 1] [textBytes ≥ 1] [failedEvery ≥ 1] [reps ≥ 1]',
    )
    process.exit(2)
  }
  return n
}) as [number, number, number, number]

const DB = 'outbox_kept'
// settledCounts as released up to 0008: one scan of the whole table.
const COUNT_BEFORE_0009 = sql`
  select status, count(*) as n from mailer.email_outbox
   where status in ('sent', 'failed', 'cancelled') group by status`

interface Variant {
  name: string
  withoutIndex: boolean
  run: (trx: Transaction<Database>) => Promise<unknown>
}
const variants: Variant[] = [
  {
    name: 'count finished rows, as before 0009',
    withoutIndex: true,
    run: (trx) => COUNT_BEFORE_0009.execute(trx),
  },
  {
    name: 'count finished rows (settledCounts)',
    withoutIndex: false,
    run: (trx) => settledCounts(trx, null),
  },
  {
    name: '50 newest failed rows, without 0009’s index',
    withoutIndex: true,
    run: (trx) => listOutbox(trx, { status: ['failed'] }, { limit: 50 }, null),
  },
  {
    name: '50 newest failed rows (listOutbox)',
    withoutIndex: false,
    run: (trx) => listOutbox(trx, { status: ['failed'] }, { limit: 50 }, null),
  },
]

class Rollback extends Error {}

const size = (bytes: number) =>
  bytes >= 2 ** 20 ? `${fmt(bytes / 2 ** 20, 1)} MiB` : `${fmt(bytes / 1024)} KiB`

const cluster = await startBenchCluster()
try {
  await cluster.createDatabase(DB)
  await migrate({ url: cluster.url(DB), log: silentLogger })
  const probe = await openProbe(cluster.probeUrl(DB))
  const fillS = await fillKept(probe, { kept, textBytes, failedEvery })
  await cluster.admin.query('checkpoint')
  const sizes = await probe.query<{ name: string; bytes: string }>(
    `select c.relname as name, pg_relation_size(c.oid) as bytes from pg_class c
      where c.relnamespace = 'mailer'::regnamespace
        and c.relname in ('email_outbox', 'email_outbox_pkey', 'email_outbox_failed_cancelled_idx')
      order by 2 desc`,
  )
  await probe.close()
  console.log(
    `\n${fmt(kept)} finished rows kept (one in ${fmt(failedEvery)} failed, text body ${textBytes} B), filled in ${fmt(fillS)} s: ${sizes.map((s) => `${s.name} ${size(Number(s.bytes))}`).join(', ')}\n`,
  )

  const h = openDb({ name: DB, url: cluster.url(DB), log: silentLogger, maxConnections: 1 })
  const results = new Map<string, { ms: number; pages: number; read: number }[]>()
  for (let rep = 0; rep < reps; rep++) {
    for (const v of variants) {
      await cluster.admin.query('select pg_stat_statements_reset()')
      await runRolledBack(h.db, v)
      const r = await cluster.admin.query<{ ms: number; hit: string; read: string }>(
        `select s.total_exec_time as ms, s.shared_blks_hit as hit, s.shared_blks_read as read
           from pg_stat_statements s join pg_database d on d.oid = s.dbid
          where d.datname = $1 and s.query ilike '%from "mailer"."email_outbox"%'
             or d.datname = $1 and s.query ilike '%from mailer.email_outbox%'
          order by s.total_exec_time desc limit 1`,
        [DB],
      )
      const row = r.rows[0]
      if (!row) throw new Error(`no statement recorded for "${v.name}"`)
      const list = results.get(v.name) ?? []
      list.push({
        ms: row.ms,
        pages: Number(row.hit) + Number(row.read),
        read: Number(row.read),
      })
      results.set(v.name, list)
    }
  }
  await h.close()

  console.log(`| statement | ms (median of ${reps}) | pages (hit + read) | of which read |`)
  console.log('| --- | --- | --- | --- |')
  for (const v of variants) {
    const list = results.get(v.name) ?? []
    const m = (f: (x: { ms: number; pages: number; read: number }) => number) => median(list.map(f))
    console.log(
      `| ${v.name} | ${fmt(
        m((x) => x.ms),
        1,
      )} | ${fmt(m((x) => x.pages))} | ${fmt(m((x) => x.read))} |`,
    )
  }
} finally {
  await cluster.stop()
}

async function runRolledBack(db: Kysely<Database>, v: Variant) {
  await db
    .transaction()
    .execute(async (trx) => {
      if (v.withoutIndex)
        await sql`drop index mailer.email_outbox_failed_cancelled_idx`.execute(trx)
      await v.run(trx)
      throw new Rollback()
    })
    .catch((e) => {
      if (!(e instanceof Rollback)) throw e
    })
}
