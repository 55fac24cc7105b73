// `bun run bench/pending-index-cost.ts [rounds] [rows]`: what an index of the pending rows in id order would cost the writes, taking turns with and without it.
//
// One database; before each turn the index `(id) where status = 'pending'` is built or dropped
// (on an emptied table: nothing to read). Subjects: without it, with it, and without it again
// (A/A: the bench's own spread). Each round (default 20, after 3 unmeasured) each takes its turn,
// the first rotating, on one connection: `rows` (default 2000) mailer.enqueue_email in one
// statement; the engine's claim and settlement as sent (bench/engine-batch.ts, 500 a batch) until
// none is left; then `rows` more enqueued (unmeasured), all claimed, each given back (a throttle's
// retry, settleLeases: back to pending, an entry in every index of pending rows), then claimed and
// settled. Measured per phase: the session's backend CPU (/proc; ticks are 10 ms) and WAL bytes
// (pg_current_wal_insert_lsn) per row, and the table's updates and HOT updates (pg_stat_user_tables,
// flushed by pg_stat_force_next_flush). Reported: medians over rounds, and the medians of the
// rounds' ratios with/without and again/without (p25–p75).
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import { type DbHandle, openDb } from '../src/db/open.ts'
import { silentLogger } from '../src/log.ts'
import { settleLeases } from '../src/outbox/settle.ts'
import { startBenchCluster } from './cluster.ts'
import { claimStarted, settleAllSent } from './engine-batch.ts'
import { median } from './percentiles.ts'
import { fmt, ratioSpread } from './report.ts'
import { backendCpuSeconds, lsnBytes } from './server-stats.ts'

const rounds = Number(process.argv[2] ?? 20)
const rows = Number(process.argv[3] ?? 2000)
if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(rows) || rows < 1) {
  console.error('usage: bun run bench/pending-index-cost.ts [rounds ≥ 1] [rows ≥ 1]')
  process.exit(2)
}
const WARMUP = 3
const PHASES = ['enqueue', 'claim+settle', 'give-back drain'] as const
type Phase = (typeof PHASES)[number]
interface Sample {
  cpu: number
  wal: number
  upd: number
  hot: number
}
interface Subject {
  name: string
  index: boolean
  samples: Record<Phase, Sample[]>
}
const subjects: Subject[] = ['without', 'with', 'without again'].map((name) => ({
  name,
  index: name === 'with',
  samples: { enqueue: [], 'claim+settle': [], 'give-back drain': [] },
}))

const cluster = await startBenchCluster()
const dbName = 'pending_index'
await cluster.createDatabase(dbName)
await migrate({ url: cluster.url(dbName), log: silentLogger })
const h: DbHandle = openDb({
  name: dbName,
  url: cluster.url(dbName),
  log: silentLogger,
  maxConnections: 1,
})
const ENQUEUE = `select count(mailer.enqueue_email(jsonb_build_object(
    'to', 'rcpt' || g || '@example.com', 'subject', 'Order ' || g, 'text', repeat('Thanks. ', 20))))
  from generate_series(1, $1::int) g`
try {
  const pid = (await h.pool.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
  // Autovacuum would write WAL and use CPU in some turns and not others.
  await h.pool.query('alter table mailer.email_outbox set (autovacuum_enabled = off)')
  await h.pool.query('alter table mailer.email_attempts set (autovacuum_enabled = off)')
  // The bench's own reads, as bench_probe (left out of the statement counts).
  const probe = new pg.Client(cluster.probeUrl(dbName))
  await probe.connect()
  const counters = async () => {
    await h.pool.query('select pg_stat_force_next_flush()')
    // The flush happens as the session goes idle; the probe reads what it left.
    await Bun.sleep(20)
    await probe.query('select pg_stat_clear_snapshot()')
    const r = await probe.query<{ upd: string; hot: string }>(
      `select n_tup_upd as upd, n_tup_hot_upd as hot from pg_stat_user_tables
        where relid = to_regclass('mailer.email_outbox')`,
    )
    return r.rows[0] ?? { upd: '0', hot: '0' }
  }
  const measure = async (
    s: Subject,
    phase: Phase,
    measured: boolean,
    work: () => Promise<unknown>,
  ) => {
    const before = await counters()
    const w0 = (await h.pool.query<{ l: string }>('select pg_current_wal_insert_lsn() as l'))
      .rows[0]!.l
    const c0 = await backendCpuSeconds(pid)
    await work()
    const c1 = await backendCpuSeconds(pid)
    const w1 = (await h.pool.query<{ l: string }>('select pg_current_wal_insert_lsn() as l'))
      .rows[0]!.l
    const after = await counters()
    if (!measured) return
    s.samples[phase].push({
      cpu: ((c1 - c0) * 1e6) / rows,
      wal: Number(lsnBytes(w1) - lsnBytes(w0)) / rows,
      upd: Number(after.upd) - Number(before.upd),
      hot: Number(after.hot) - Number(before.hot),
    })
  }
  const drain = async () => {
    for (;;) {
      const leases = await claimStarted(h.db, 500, 'pending-index-cost')
      if (leases.length === 0) return
      await settleAllSent(h.db, leases, 'pending-index-cost')
    }
  }
  const giveBackDrain = async () => {
    // Every row claimed (held), then each given back at once (a throttle: attempts unchanged, due
    // now), then drained.
    const held = []
    for (;;) {
      const leases = await claimStarted(h.db, 500, 'pending-index-cost')
      if (leases.length === 0) break
      held.push(...leases)
    }
    await settleLeases(
      h.db,
      held.map((l) => ({
        id: l.id,
        token: l.token,
        startedAt: new Date(),
        settlement: {
          kind: 'retry' as const,
          code: 'throttled',
          message: 'throttled',
          delayMs: 0,
          throttled: true,
          ambiguous: false,
        },
      })),
      { workerId: 'pending-index-cost', defaultMaxAttempts: 5, throttleDeadlineSeconds: 86_400 },
    )
    await drain()
  }
  for (let r = 0; r < WARMUP + rounds; r++) {
    const order = subjects.map((_, i) => subjects[(i + r) % subjects.length]!)
    for (const s of order) {
      await h.pool.query('truncate mailer.email_attempts, mailer.email_outbox, mailer.workers')
      await h.pool.query(
        s.index
          ? `create index if not exists email_outbox_pending_id_idx on mailer.email_outbox (id)
               where status = 'pending'`
          : 'drop index if exists mailer.email_outbox_pending_id_idx',
      )
      const measured = r >= WARMUP
      await measure(s, 'enqueue', measured, () => h.pool.query(ENQUEUE, [rows]))
      await measure(s, 'claim+settle', measured, drain)
      await h.pool.query(ENQUEUE, [rows])
      await measure(s, 'give-back drain', measured, giveBackDrain)
    }
  }
  const columns = [
    'phase',
    'CPU µs/row without · with · without again',
    'ratio with / without (p25–p75)',
    'again / without (A/A)',
    'WAL B/row without · with · again (with / without)',
    'updates (HOT) a turn without · with',
  ]
  console.log(
    [
      `\n${rounds} rounds of ${rows} rows per phase and subject (after ${WARMUP} unmeasured), taking turns in one database\n`,
      `| ${columns.join(' | ')} |`,
      `|${' --- |'.repeat(columns.length)}`,
    ].join('\n'),
  )
  const [a, b, again] = [subjects[0]!, subjects[1]!, subjects[2]!]
  const ratio = (x: Subject, y: Subject, phase: Phase, k: keyof Sample) =>
    ratioSpread(
      x.samples[phase].map((u) => u[k]),
      y.samples[phase].map((u) => u[k]),
    )
  const med = (s: Subject, phase: Phase, k: keyof Sample) =>
    median(s.samples[phase].map((x) => x[k]))
  for (const phase of PHASES) {
    console.log(
      `| ${phase} | ${subjects.map((s) => fmt(med(s, phase, 'cpu'), 1)).join(' · ')} | ${ratio(b, a, phase, 'cpu')} | ${ratio(again, a, phase, 'cpu')} | ${subjects.map((s) => fmt(med(s, phase, 'wal'), 0)).join(' · ')} (${ratio(b, a, phase, 'wal')}) | ${fmt(med(a, phase, 'upd'), 0)} (${fmt(med(a, phase, 'hot'), 0)}) · ${fmt(med(b, phase, 'upd'), 0)} (${fmt(med(b, phase, 'hot'), 0)}) |`,
    )
  }
  await probe.end()
} finally {
  await h.close()
  await cluster.stop()
}
