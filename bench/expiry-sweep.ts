// `bun run bench/expiry-sweep.ts [reps]`: what the reclaim's expiry sweep reads, with and without 0022's index, and what that index costs an enqueue in WAL.
//
// One outbox of 200,000 rows: 150,000 finished, 50,000 pending (a backlog nobody drains here), of
// which 10,000 carry an expiresAt an hour ahead. Then, each variant in a transaction rolled back,
// taking turns `reps` times (default 5):
// - the worker's reclaim statement as it runs idle (nothing in flight): without the sweep (as
//   released before round 25), with it and nothing expired, with it and 2,000 rows expired (its
//   second batch of 500 failed), each with 0022's index and without it (dropped in the
//   transaction). Time and pages (shared buffers hit + read) of its second call in the
//   transaction, from pg_stat_statements; the plans with the index once, from EXPLAIN (ANALYZE, BUFFERS).
// Then enqueue WAL: 2,000 enqueues, one transaction each (as an application commits them), with
// and without an expiresAt, with the index and without it, alternating `reps` times: WAL bytes per
// enqueue from pg_current_wal_lsn (the cluster has nothing else to write meanwhile).
import { CompiledQuery, type Kysely, sql, type Transaction } from 'kysely'
import { migrate } from '../src/db/migrate.ts'
import { openDb } from '../src/db/open.ts'
import type { Database } from '../src/db/schema.ts'
import { silentLogger } from '../src/log.ts'
import { EXPIRY_SWEEP_LIMIT } from '../src/outbox/expiry-sweep.ts'
import { reclaimExpired } from '../src/outbox/reclaim.ts'
import { reclaimStatement } from '../src/outbox/reclaim-statement.ts'
import { startBenchCluster } from './cluster.ts'
import { median } from './percentiles.ts'
import { fmt } from './report.ts'
import { openProbe } from './systems/probe.ts'

const reps = Number(process.argv[2] ?? 5)
if (!Number.isInteger(reps) || reps < 1) {
  console.error('usage: bun run bench/expiry-sweep.ts [reps ≥ 1]')
  process.exit(2)
}

const DB = 'outbox_expiry'
const INDEX = 'mailer.email_outbox_expiring_idx'
const FINISHED = 150_000
const PENDING = 50_000
const EXPIRING = 10_000
const EXPIRED = 2_000
const ENQUEUES = 2_000
const sweep = { workerId: 'bench', limit: EXPIRY_SWEEP_LIMIT }

interface Variant {
  name: string
  dropIndex: boolean
  expired: boolean
  run: (t: Transaction<Database>) => Promise<unknown>
}
const reclaim = (withSweep: boolean) => (t: Transaction<Database>) =>
  reclaimExpired(t, { defaultMaxAttempts: 8, ...(withSweep ? { sweep } : {}) })
const variants: Variant[] = [
  { name: 'reclaim without the sweep', dropIndex: false, expired: false, run: reclaim(false) },
  { name: 'reclaim + sweep, none expired', dropIndex: false, expired: false, run: reclaim(true) },
  {
    name: 'reclaim + sweep, none expired, no index',
    dropIndex: true,
    expired: false,
    run: reclaim(true),
  },
  {
    name: `reclaim + sweep, ${fmt(EXPIRED)} expired`,
    dropIndex: false,
    expired: true,
    run: reclaim(true),
  },
  {
    name: `reclaim + sweep, ${fmt(EXPIRED)} expired, no index`,
    dropIndex: true,
    expired: true,
    run: reclaim(true),
  },
]

class Rollback extends Error {}

const cluster = await startBenchCluster()
try {
  await cluster.createDatabase(DB)
  await migrate({ url: cluster.url(DB), log: silentLogger })
  const probe = await openProbe(cluster.probeUrl(DB))
  const message = `jsonb_build_object('to', 'a@example.com', 'subject', 'kept', 'text', 'x')`
  await probe.query(
    `insert into mailer.email_outbox (message, status, sent_at, attempts)
     select ${message}, 'sent', now(), 1 from generate_series(1, $1::int)`,
    [FINISHED],
  )
  await probe.query(
    `insert into mailer.email_outbox (message, expires_at)
     select ${message}, case when g <= $2 then now() + interval '1 hour' end
       from generate_series(1, $1::int) g`,
    [PENDING, EXPIRING],
  )
  await probe.query('vacuum (analyze) mailer.email_outbox')
  await cluster.admin.query('checkpoint')

  const h = openDb({ name: DB, url: cluster.url(DB), log: silentLogger, maxConnections: 1 })
  // Within a variant's transaction: the first EXPIRED expiring rows have expired.
  const expire = (t: Transaction<Database>) =>
    sql`update mailer.email_outbox set expires_at = now() - interval '1 second',
               send_at = now() - interval '2 seconds'
         where id in (select id from mailer.email_outbox where expires_at is not null
                       order by id limit ${EXPIRED})`.execute(t)

  for (const expired of [false, true]) {
    await rolledBack(h.db, async (t) => {
      if (expired) await expire(t)
      const q = reclaimStatement({ defaultMaxAttempts: 8, sweep }).compile(t)
      const plan = await t.executeQuery<{ 'QUERY PLAN': string }>(
        CompiledQuery.raw(`explain (analyze, buffers, costs off) ${q.sql}`, [...q.parameters]),
      )
      console.log(
        `\nThe reclaim statement's plan, with the sweep, ${expired ? `${fmt(EXPIRED)} expired` : 'none expired'}:\n${plan.rows.map((r) => `    ${r['QUERY PLAN']}`).join('\n')}`,
      )
    })
  }

  const results = new Map<string, { ms: number; pages: number; swept: number }[]>()
  for (let rep = 0; rep < reps; rep++) {
    for (const v of variants) {
      let swept = 0
      await rolledBack(h.db, async (t) => {
        if (v.dropIndex) await sql`drop index ${sql.table(INDEX)}`.execute(t)
        if (v.expired) await expire(t)
        // A first call warms the caches a dropped index invalidated; the second is measured.
        await v.run(t)
        await cluster.admin.query('select pg_stat_statements_reset()')
        const r = (await v.run(t)) as { swept: unknown[] }
        swept = r.swept.length
      })
      const r = await cluster.admin.query<{ ms: number | null; hit: string; read: string }>(
        `select sum(s.total_exec_time) as ms, sum(s.shared_blks_hit) as hit,
                sum(s.shared_blks_read) as read
           from pg_stat_statements s join pg_database d on d.oid = s.dbid
          where d.datname = $1 and s.query ilike 'with in_flight as%'`,
        [DB],
      )
      const row = r.rows[0]
      if (!row || row.ms === null) throw new Error(`no statement recorded for "${v.name}"`)
      const list = results.get(v.name) ?? []
      list.push({ ms: row.ms, pages: Number(row.hit) + Number(row.read), swept })
      results.set(v.name, list)
    }
  }
  console.log(
    `\n${fmt(FINISHED)} finished rows, ${fmt(PENDING)} pending (${fmt(EXPIRING)} with an expiresAt):\n`,
  )
  console.log(`| statement | ms (median of ${reps}) | pages (hit + read) | rows failed |`)
  console.log('| --- | --- | --- | --- |')
  for (const v of variants) {
    const list = results.get(v.name) ?? []
    console.log(
      `| ${v.name} | ${fmt(median(list.map((x) => x.ms)), 3)} | ${fmt(median(list.map((x) => x.pages)))} | ${list[0]?.swept ?? 0} |`,
    )
  }

  // Enqueue WAL: each variant its own batch of single-enqueue transactions, alternating.
  const wal = new Map<string, number[]>()
  await probe.query('checkpoint')
  for (let rep = 0; rep < reps; rep++) {
    for (const indexed of [true, false]) {
      if (indexed)
        await probe.query(`create index if not exists email_outbox_expiring_idx
          on mailer.email_outbox (expires_at) where status = 'pending' and expires_at is not null`)
      else await probe.query(`drop index if exists ${INDEX}`)
      for (const withExpiry of [false, true]) {
        const options = withExpiry
          ? `jsonb_build_object('expiresAt', now() + interval '1 hour')`
          : `'{}'::jsonb`
        const before = await probe.query<{ lsn: string }>('select pg_current_wal_lsn() as lsn')
        for (let i = 0; i < ENQUEUES; i++)
          await probe.query(
            `select mailer.enqueue_email('{"to":"a@example.com","subject":"s","text":"t"}'::jsonb, ${options})`,
          )
        const after = await probe.query<{ b: string }>(
          'select pg_wal_lsn_diff(pg_current_wal_lsn(), $1) as b',
          [before[0]!.lsn],
        )
        const name = `${withExpiry ? 'with' : 'without'} an expiresAt, ${indexed ? 'with' : 'without'} 0022's index`
        wal.set(name, [...(wal.get(name) ?? []), Number(after[0]!.b) / ENQUEUES])
      }
    }
  }
  await probe.close()
  await h.close()
  console.log(
    `\n| enqueue (one per transaction, ${fmt(ENQUEUES)} per rep) | WAL B per enqueue (median of ${reps}; min–max) |`,
  )
  console.log('| --- | --- |')
  for (const [name, list] of wal)
    console.log(
      `| ${name} | ${fmt(median(list))} (${fmt(Math.min(...list))}–${fmt(Math.max(...list))}) |`,
    )
} finally {
  await cluster.stop()
}

async function rolledBack(db: Kysely<Database>, f: (t: Transaction<Database>) => Promise<void>) {
  await db
    .transaction()
    .execute(async (t) => {
      await f(t)
      throw new Rollback()
    })
    .catch((e) => {
      if (!(e instanceof Rollback)) throw e
    })
}
