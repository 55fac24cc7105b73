// `bun run bench/kept-reads.ts [kept] [textBytes] [failedEvery] [reps]`: what reporting on and acting on an outbox that keeps its history reads.
//
// /metrics recounts the finished rows every 5 minutes and every /v1/stats counts them; an operator
// lists the failed rows to review them, retries them in bulk, or cancels a backlog of pending rows.
// This fills one outbox with `kept` finished rows (default 1,000,000, text bodies of `textBytes` hex
// digits, default 1,000; one in `failedEvery` failed, default 1,000), frozen and analyzed as
// autovacuum leaves old rows, then 1,000 pending rows after them (a backlog nobody drains here),
// and times each statement, as released before round 17 (without 0009's index, dropped in the
// transaction) and now, the variants taking turns `reps` times (default 5), each in a transaction
// that is rolled back (so every rep finds the same rows):
// - the count of finished rows: one grouped scan of the table before; settledCounts now;
// - the 50 newest failed rows (listOutbox);
// - a bulk retry of 100 rows and a bulk cancel of 100 rows: the single statement before (an id-ordered
//   candidate scan under the update); requeueMatching and cancelMatching now;
// - one order's mails by correlation id (a row halfway through the kept ones): the primary key walked
//   newest first before round 18 (0010's index dropped); listOutbox now;
// - deploy/prune-finished.sql with nothing due (keep 90 days) and with everything due (keep 1 hour:
//   it deletes 10,000), as released before round 18 and now.
// Time and pages (shared buffers hit + read, parallel workers included) come from pg_stat_statements,
// summed over the variant's statements.
import { join } from 'node:path'
import { type Kysely, sql, type Transaction } from 'kysely'
import { migrate } from '../src/db/migrate.ts'
import { openDb } from '../src/db/open.ts'
import type { Database } from '../src/db/schema.ts'
import { silentLogger } from '../src/log.ts'
import { cancelMatching } from '../src/outbox/bulk-cancel.ts'
import { requeueMatching } from '../src/outbox/bulk-requeue.ts'
import { listOutbox } from '../src/outbox/inspect.ts'
import { SUMMARY_COLUMNS } from '../src/outbox/outbox-view.ts'
import { settledCounts } from '../src/outbox/settled-counts.ts'
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
      'usage: bun run bench/kept-reads.ts [kept ≥ 1] [textBytes ≥ 1] [failedEvery ≥ 1] [reps ≥ 1]',
    )
    process.exit(2)
  }
  return n
}) as [number, number, number, number]

const DB = 'outbox_kept'
const PENDING = 1_000
const BATCH = 100

// The statements as released before round 17: settledCounts (one scan of the whole table), and the
// bulk retry and cancel, each one update over an id-ordered candidate scan locking as it goes.
const COUNT_BEFORE = sql`
  select status, count(*) as n from mailer.email_outbox
   where status in ('sent', 'failed', 'cancelled') group by status`
const RETRY_BEFORE = sql`
  update mailer.email_outbox
     set status = 'pending', attempts = 0, send_at = now(), cancel_requested_at = null,
         send_started_at = null, sent_at = null, lease_owner = null
   where id in (select id from mailer.email_outbox
                 where status in ('failed', 'cancelled') and (expires_at is null or expires_at > now())
                 order by id limit ${BATCH} for update)
  returning id`
const CANCEL_BEFORE = sql`
  update mailer.email_outbox
     set status = case when status = 'pending' then 'cancelled' else status end,
         cancel_requested_at = coalesce(cancel_requested_at, now())
   where id in (select id from mailer.email_outbox
                 where status = 'pending' or (status = 'sending' and cancel_requested_at is null)
                 order by id limit ${BATCH} for update)
  returning id, status`

// deploy/prune-finished.sql's statement (after psql's guard) with `keep` in place of psql's :'keep'.
const pruneNow = await Bun.file(join(import.meta.dir, '../deploy/prune-finished.sql')).text()
const PRUNE_NOW = pruneNow.slice(pruneNow.indexOf('with recursive'))
// As released before round 18: the walk went on to the table's end when fewer than 10,000 were due.
const PRUNE_BEFORE = `
  with old as (
    select o.id from mailer.email_outbox o
     where o.status in ('sent', 'failed', 'cancelled')
       and greatest(o.send_at, o.sent_at, o.cancel_requested_at) < now() - :'keep'::interval
     order by o.id limit 10000 for update skip locked
  ), gone as (
    delete from mailer.email_outbox o using old where o.id = old.id returning o.id
  ), history as (
    delete from mailer.email_attempts a using gone where a.outbox_id = gone.id
  )
  select count(*) as pruned from gone`
const prune =
  (text: string, keep: string, expected: number) => async (t: Transaction<Database>) => {
    const { rows } = await sql
      .raw<{ pruned: string }>(text.replaceAll(":'keep'", `'${keep}'`))
      .execute(t)
    if (Number(rows[0]?.pruned) !== expected)
      throw new Error(`pruned ${rows[0]?.pruned} rows, expected ${expected}`)
  }

const FAILED_INDEX = 'mailer.email_outbox_failed_cancelled_idx'
const CORRELATION_INDEX = 'mailer.email_outbox_correlation_idx'
const ORDER = `order-${Math.ceil(kept / 2)}`

interface Variant {
  name: string
  /** Dropped in the transaction: the variant runs as released before that index. */
  dropIndex?: string
  run: (trx: Transaction<Database>) => Promise<unknown>
}
const newestFailed = (trx: Transaction<Database>) =>
  listOutbox(trx, { status: ['failed'] }, { limit: 50 }, null)
// listOutbox as released before round 18: a correlation id was one more filter on the id-ordered walk.
const byCorrelationBefore = (trx: Transaction<Database>) =>
  trx
    .selectFrom('mailer.email_outbox')
    .select(SUMMARY_COLUMNS)
    .where('correlation_id', '=', ORDER)
    .orderBy('id', 'desc')
    .limit(51)
    .execute()
const variants: Variant[] = [
  {
    name: 'count finished rows, before',
    dropIndex: FAILED_INDEX,
    run: (t) => COUNT_BEFORE.execute(t),
  },
  {
    name: 'count finished rows, now (settledCounts)',
    run: (t) => settledCounts(t, null),
  },
  { name: '50 newest failed rows, before', dropIndex: FAILED_INDEX, run: newestFailed },
  { name: '50 newest failed rows, now (listOutbox)', run: newestFailed },
  {
    name: `bulk retry of ${BATCH}, before`,
    dropIndex: FAILED_INDEX,
    run: (t) => RETRY_BEFORE.execute(t),
  },
  {
    name: `bulk retry of ${BATCH}, now (requeueMatching)`,
    run: (t) => requeueMatching(t, {}, null, { limit: BATCH }),
  },
  {
    name: `bulk cancel of ${BATCH}, before`,
    dropIndex: FAILED_INDEX,
    run: (t) => CANCEL_BEFORE.execute(t),
  },
  {
    name: `bulk cancel of ${BATCH}, now (cancelMatching)`,
    run: (t) => cancelMatching(t, {}, null, { limit: BATCH }),
  },
  { name: "an order's mails, before", dropIndex: CORRELATION_INDEX, run: byCorrelationBefore },
  {
    name: "an order's mails, now (listOutbox)",
    run: (t) => listOutbox(t, { correlationId: ORDER }, { limit: 50 }, null),
  },
  { name: 'prune, nothing due, before', run: prune(PRUNE_BEFORE, '90 days', 0) },
  { name: 'prune, nothing due, now', run: prune(PRUNE_NOW, '90 days', 0) },
  { name: 'prune, 10,000 due, before', run: prune(PRUNE_BEFORE, '1 hour', 10_000) },
  { name: 'prune, 10,000 due, now', run: prune(PRUNE_NOW, '1 hour', 10_000) },
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
  await probe.query(
    `insert into mailer.email_outbox (message)
     select jsonb_build_object('to', 'a@example.com', 'subject', 'a backlog', 'text', 'x')
       from generate_series(1, $1::int)`,
    [PENDING],
  )
  await probe.query('vacuum (analyze) mailer.email_outbox')
  await cluster.admin.query('checkpoint')
  const sizes = await probe.query<{ name: string; bytes: string }>(
    `select c.relname as name, pg_relation_size(c.oid) as bytes from pg_class c
      where c.relnamespace = 'mailer'::regnamespace
        and c.relname in ('email_outbox', 'email_outbox_pkey', 'email_outbox_failed_cancelled_idx',
                          'email_outbox_correlation_idx')
      order by 2 desc`,
  )
  await probe.close()
  console.log(
    `\n${fmt(kept)} finished rows kept (one in ${fmt(failedEvery)} failed, text body ${textBytes} B) and ${fmt(PENDING)} pending after them, filled in ${fmt(fillS)} s: ${sizes.map((s) => `${s.name} ${size(Number(s.bytes))}`).join(', ')}\n`,
  )

  const h = openDb({ name: DB, url: cluster.url(DB), log: silentLogger, maxConnections: 1 })
  const results = new Map<string, { ms: number; pages: number; read: number }[]>()
  for (let rep = 0; rep < reps; rep++) {
    for (const v of variants) {
      await cluster.admin.query('select pg_stat_statements_reset()')
      await runRolledBack(h.db, v)
      const r = await cluster.admin.query<{ ms: number | null; hit: string; read: string }>(
        `select sum(s.total_exec_time) as ms, sum(s.shared_blks_hit) as hit,
                sum(s.shared_blks_read) as read
           from pg_stat_statements s join pg_database d on d.oid = s.dbid
          where d.datname = $1 and s.query not ilike 'drop index%'
            and lower(s.query) not in ('begin', 'rollback', 'commit')`,
        [DB],
      )
      const row = r.rows[0]
      if (!row || row.ms === null) throw new Error(`no statement recorded for "${v.name}"`)
      const list = results.get(v.name) ?? []
      list.push({ ms: row.ms, pages: Number(row.hit) + Number(row.read), read: Number(row.read) })
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
      if (v.dropIndex) await sql`drop index ${sql.table(v.dropIndex)}`.execute(trx)
      await v.run(trx)
      throw new Rollback()
    })
    .catch((e) => {
      if (!(e instanceof Rollback)) throw e
    })
}
