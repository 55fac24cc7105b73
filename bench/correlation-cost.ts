// `bun run bench/correlation-cost.ts [batches] [keys]`: what 0010's correlation index costs a mail that carries a correlation id.
//
// Three databases on one cluster: as released before round 18 (0010's index dropped), as now, and
// with every row version indexed (the plain index 0010 chose not to be). Each takes turns inserting
// 500 rows with their own correlation ids, claiming them (claimBatch, as a file transport does) and
// settling them (markSent), `batches` times (default 80) after 3 unmeasured. Per row and statement:
// the backend's CPU time (/proc; ticks are 10 ms, so sums over all batches) and WAL bytes.
// `keys`: `mixed` (default: `order-<n>`, whose text order jumps about as n gains digits, so inserts
// land all over the index) or `ordered` (`inquiry:<n>` zero-padded, as ids of one length arrive from
// a sequence: each insert lands at the index's right edge).
import { migrate } from '../src/db/migrate.ts'
import { type DbHandle, openDb } from '../src/db/open.ts'
import { silentLogger } from '../src/log.ts'
import { startBenchCluster } from './cluster.ts'
import { claimStarted, settleAllSent } from './engine-batch.ts'
import { fmt } from './report.ts'
import { backendCpuSeconds, lsnBytes } from './server-stats.ts'
import { OUTBOX_MESSAGE } from './systems/outbox-engine.ts'

const batches = Number(process.argv[2] ?? 80)
const keys = process.argv[3] ?? 'mixed'
if (!Number.isInteger(batches) || batches < 1 || !['mixed', 'ordered'].includes(keys)) {
  console.error('usage: bun run bench/correlation-cost.ts [batches ≥ 1] [mixed | ordered]')
  process.exit(2)
}
const KEY = keys === 'mixed' ? `'order-' || g` : `'inquiry:' || lpad(g::text, 12, '0')`
const ROWS = 500
const WARMUP = 3

const DROP = 'drop index mailer.email_outbox_correlation_idx'
const variants = [
  { name: 'before (no correlation index)', db: 'corr_before', setup: [DROP] },
  { name: 'now (0010: finished rows only)', db: 'corr_now', setup: [] },
  {
    name: 'every row version indexed',
    db: 'corr_every',
    setup: [
      DROP,
      `create index email_outbox_correlation_idx on mailer.email_outbox (correlation_id, id)
        where correlation_id is not null`,
    ],
  },
]

interface Cost {
  cpu: number
  wal: number
}
const steps = ['insert', 'claim', 'settle'] as const
interface Subject {
  name: string
  h: DbHandle
  pid: number
  cost: Record<(typeof steps)[number], Cost>
}

const cluster = await startBenchCluster()
const subjects: Subject[] = []
try {
  for (const v of variants) {
    await cluster.createDatabase(v.db)
    await migrate({ url: cluster.url(v.db), log: silentLogger })
    const h = openDb({ name: v.db, url: cluster.url(v.db), log: silentLogger, maxConnections: 1 })
    for (const statement of v.setup) await h.pool.query(statement)
    await h.pool.query('vacuum analyze mailer.email_outbox')
    const pid = (await h.pool.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
    const cost = Object.fromEntries(steps.map((s) => [s, { cpu: 0, wal: 0 }])) as Subject['cost']
    subjects.push({ name: v.name, h, pid, cost })
  }
  const lsn = async () =>
    (await cluster.admin.query<{ l: string }>('select pg_current_wal_insert_lsn()::text as l'))
      .rows[0]!.l
  async function measured<T>(pid: number, into: Cost | null, run: () => Promise<T>) {
    const [c0, w0] = [await backendCpuSeconds(pid), await lsn()]
    const result = await run()
    const [w1, c1] = [await lsn(), await backendCpuSeconds(pid)]
    if (into) {
      into.cpu += c1 - c0
      into.wal += Number(lsnBytes(w1) - lsnBytes(w0))
    }
    return result
  }

  for (let b = 0; b < WARMUP + batches; b++) {
    for (const s of subjects) {
      const c = b < WARMUP ? null : s.cost
      await measured(s.pid, c?.insert ?? null, () =>
        s.h.pool.query(
          `insert into mailer.email_outbox (message, correlation_id)
           select ${OUTBOX_MESSAGE}, ${KEY} from generate_series($1::int, $2::int) g`,
          [b * ROWS, b * ROWS + ROWS - 1],
        ),
      )
      const leases = await measured(s.pid, c?.claim ?? null, () =>
        claimStarted(s.h.statements.db, ROWS, 'correlation-cost'),
      )
      if (leases.length !== ROWS) throw new Error(`${s.name}: claimed ${leases.length} of ${ROWS}`)
      await measured(s.pid, c?.settle ?? null, () =>
        settleAllSent(s.h.statements.db, leases, 'correlation-cost'),
      )
    }
  }

  const n = batches * ROWS
  const us = (c: Cost) => (c.cpu * 1e6) / n
  const bytes = (c: Cost) => c.wal / n
  const total = (s: Subject, f: (c: Cost) => number) => steps.reduce((a, k) => a + f(s.cost[k]), 0)
  console.log(
    `\n${fmt(batches)} batches of ${ROWS} rows with correlation ids (${keys} keys) per variant (after ${WARMUP} unmeasured), taking turns\n`,
  )
  console.log(
    '| variant | CPU µs/row insert · claim · settle | total | WAL B/row insert · claim · settle | total |',
  )
  console.log('| --- | --- | --- | --- | --- |')
  for (const s of subjects) {
    console.log(
      `| ${s.name} | ${steps.map((k) => fmt(us(s.cost[k]), 1)).join(' · ')} | ${fmt(total(s, us), 1)} | ${steps
        .map((k) => fmt(bytes(s.cost[k])))
        .join(' · ')} | ${fmt(total(s, bytes))} |`,
    )
  }
} finally {
  for (const s of subjects) await s.h.close()
  await cluster.stop()
}
