// `bun run bench/statement-cost.ts [batches] [rows]`: what one drain batch's claim and completion cost Postgres, run alone.
//
// A drain on this machine is bound by its two cores, shared by Postgres and the client, so what a
// row costs decides how fast a system can drain. This runs each system's two drain statements one
// at a time on an otherwise quiet cluster (no contention, no client work in between): `rows` rows
// committed, then one claim of all of them, then one completion of all of them, the systems taking
// turns batch by batch. Reported per statement: round trip (median per batch, and per row), the
// backend's CPU time per row (/proc, summed over the batches: ticks are 10 ms), WAL bytes per row.
// Ours are the engine's own calls (claimBatch as a file/discard transport claims, markSent);
// graphile-worker's are its batched preset's get_job and complete_jobs as it sends them. Ours run
// twice: as released, and on a database whose mark_sent_unlocked is the installed one without its attempt
// history insert (what keeping the history costs; not something the product can drop).
// STATEMENT_COST_FROM=<checkout>[,<checkout>…] adds each other checkout's two calls (its
// bench/engine-batch.ts and src/) on a database its own migrations made, so a change is measured
// against earlier commits in the same run (e.g. a worktree of origin/main).

import { join, resolve } from 'node:path'
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import { openDb } from '../src/db/open.ts'
import { silentLogger } from '../src/log.ts'
import { startBenchCluster } from './cluster.ts'
import { claimStarted, settleAllSent } from './engine-batch.ts'
import { median } from './percentiles.ts'
import { backendCpuSeconds, lsnBytes } from './server-stats.ts'
import {
  CEILING_CLAIM,
  CEILING_COMPLETE,
  CEILING_PLAN_OPTIONS,
  ceilingSystem,
} from './systems/ceiling.ts'
import { graphileSystem } from './systems/graphile.ts'
import { COMPLETE_JOBS, GET_JOB_500, NOOP_TASK_ID } from './systems/graphile-statements.ts'
import { outboxQueue } from './systems/outbox-engine.ts'
import { openProbe, type Probe } from './systems/probe.ts'

const batches = Number(process.argv[2] ?? 100)
const rows = Number(process.argv[3] ?? 500)
if (rows > 500) throw new Error('at most 500 rows: graphile-worker claims 500 at a time')
const WARMUP_BATCHES = 3
// Absolute: a relative import would resolve against this file's folder.
const otherCheckouts = (process.env.STATEMENT_COST_FROM || '')
  .split(',')
  .filter((p) => p !== '')
  .map((p) => resolve(p))

const cluster = await startBenchCluster()
for (const db of ['outbox', 'outbox_no_history', 'graphile', 'ceiling'])
  await cluster.createDatabase(db)
for (const [k] of otherCheckouts.entries()) await cluster.createDatabase(`outbox_other_${k}`)
const probes = {
  outbox: await openProbe(cluster.probeUrl('outbox')),
  outboxNoHistory: await openProbe(cluster.probeUrl('outbox_no_history')),
  graphile: await openProbe(cluster.probeUrl('graphile')),
  ceiling: await openProbe(cluster.probeUrl('ceiling')),
}

/** One system's drain statements on one connection; `claim` returns what `complete` needs. */
interface Subject {
  name: string
  /** Empties the tables, vacuumed and analysed, as before a drain. */
  reset(): Promise<unknown>
  /** Commits `rows` due rows. */
  insert(): Promise<unknown>
  claim(): Promise<{ count: number; complete: () => Promise<unknown> }>
  backendPid(): Promise<number>
}

const closers: (() => Promise<unknown>)[] = []
const otherProbes: Probe[] = []

const ownCode = { migrate, openDb, claimStarted, settleAllSent }
/** The same functions as `checkout` has them, its migrations included. */
async function checkoutCode(checkout: string): Promise<typeof ownCode> {
  const [m, o, e] = await Promise.all([
    import(join(checkout, 'src/db/migrate.ts')),
    import(join(checkout, 'src/db/open.ts')),
    import(join(checkout, 'bench/engine-batch.ts')),
  ])
  return {
    migrate: m.migrate,
    openDb: o.openDb,
    claimStarted: e.claimStarted,
    settleAllSent: e.settleAllSent,
  }
}

/** Our two statements on `database` (migrated, then `alter`ed), as file and discard transports run them. */
async function outboxSubject(
  name: string,
  database: string,
  probe: Probe,
  alter?: (probe: Probe) => Promise<void>,
  checkout?: string,
): Promise<Subject> {
  const code = checkout ? await checkoutCode(checkout) : ownCode
  await code.migrate({ url: cluster.url(database), log: silentLogger })
  await alter?.(probe)
  const db = code.openDb({
    name: database,
    url: cluster.url(database),
    log: silentLogger,
    maxConnections: 1,
  })
  closers.push(() => db.close())
  const queue = outboxQueue(probe)
  return {
    name,
    reset: () => queue.reset(),
    insert: () => queue.insertBulk(rows),
    async claim() {
      const leases = await code.claimStarted(db.statements.db, 500, 'statement-cost')
      const startedAt = new Date()
      return {
        count: leases.length,
        complete: () => code.settleAllSent(db.statements.db, leases, 'statement-cost', startedAt),
      }
    },
    backendPid: () => pidOf(db.pool),
  }
}

/**
 * Replaces mailer.mark_sent_unlocked (what markSent calls since 0036) in the probe's database by the
 * installed definition without the CTEs that insert the attempt history (the common case's and the
 * fallback's, past a locked row); fails loudly if those CTEs are no longer where they were.
 */
async function dropHistoryInsert(probe: Probe) {
  const def = (
    await probe.query<{ def: string }>(
      `select pg_get_functiondef('mailer.mark_sent_unlocked'::regproc) as def`,
    )
  )[0]!.def
  const history = /\), history as \(\s*insert into mailer\.email_attempts[\s\S]*?from done d\s*\)/g
  if (def.match(history)?.length !== 2)
    throw new Error('mark_sent_unlocked no longer has the two history CTEs this removes')
  await probe.query(def.replace(history, ')'))
}

const graphile = graphileSystem('graphile', cluster.url('graphile'), probes.graphile, true)
await graphile.prepare()
const graphilePool = new pg.Pool({ connectionString: cluster.url('graphile'), max: 1 })
await graphile.insertBulk(1)
const taskId = (await probes.graphile.query<{ id: number }>(NOOP_TASK_ID))[0]!.id

const ceiling = ceilingSystem('ceiling', cluster.url('ceiling'), probes.ceiling)
await ceiling.prepare()
const ceilingPool = new pg.Pool({
  connectionString: cluster.url('ceiling'),
  max: 1,
  options: CEILING_PLAN_OPTIONS,
})

const pidOf = async (pool: pg.Pool) =>
  (await pool.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid

const ceilingSubject: Subject = {
  name: 'SKIP LOCKED ceiling: claim · complete (update)',
  reset: () => ceiling.reset(),
  insert: () => ceiling.insertBulk(rows),
  async claim() {
    const r = await ceilingPool.query<{ id: string }>(CEILING_CLAIM, [500])
    return {
      count: r.rows.length,
      complete: () => ceilingPool.query(CEILING_COMPLETE, [r.rows.map((j) => j.id)]),
    }
  },
  backendPid: () => pidOf(ceilingPool),
}
const subjects: Subject[] = [
  await outboxSubject(
    'outbox-mailer: claimBatch · markSent (+ attempt history)',
    'outbox',
    probes.outbox,
  ),
  ...(await Promise.all(
    otherCheckouts.map(async (checkout, k) => {
      const probe = await openProbe(cluster.probeUrl(`outbox_other_${k}`))
      otherProbes.push(probe)
      return outboxSubject(
        `outbox-mailer of ${checkout}`,
        `outbox_other_${k}`,
        probe,
        undefined,
        checkout,
      )
    }),
  )),
  await outboxSubject(
    'outbox-mailer, markSent without the history insert',
    'outbox_no_history',
    probes.outboxNoHistory,
    dropHistoryInsert,
  ),
  {
    name: 'graphile-worker batched: get_job · complete_jobs (delete)',
    reset: () => graphile.reset(),
    insert: () => graphile.insertBulk(rows),
    async claim() {
      const r = await graphilePool.query<{ id: string }>({
        name: 'get_job500',
        text: GET_JOB_500,
        values: ['statement-cost', [taskId]],
      })
      return {
        count: r.rows.length,
        complete: () =>
          graphilePool.query({
            name: 'complete_jobs',
            text: COMPLETE_JOBS,
            values: [r.rows.map((j) => j.id)],
          }),
      }
    },
    backendPid: () => pidOf(graphilePool),
  },
  ceilingSubject,
]

interface Cost {
  ms: number[]
  cpuSeconds: number
  walBytes: number
}
const fresh = (): Cost => ({ ms: [], cpuSeconds: 0, walBytes: 0 })
const costs = new Map(subjects.map((s) => [s.name, { claim: fresh(), complete: fresh() }]))
const walLsn = async () =>
  (await cluster.admin.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn'))
    .rows[0]!.lsn

/** Runs one statement, adding its round trip, its backend's CPU and the WAL written to `into`. */
async function measured<T>(pid: number, into: Cost | null, run: () => Promise<T>): Promise<T> {
  const cpu0 = await backendCpuSeconds(pid)
  const wal0 = await walLsn()
  const t0 = performance.now()
  const result = await run()
  const ms = performance.now() - t0
  const wal1 = await walLsn()
  const cpu1 = await backendCpuSeconds(pid)
  if (into) {
    into.ms.push(ms)
    into.cpuSeconds += cpu1 - cpu0
    into.walBytes += Number(lsnBytes(wal1) - lsnBytes(wal0))
  }
  return result
}

// As in a drain, the tables are emptied and vacuumed once, then batch after batch is claimed and
// completed (a vacuum or truncate in between would make every batch replan its statements).
for (const s of subjects) await s.reset()
for (let b = 0; b < WARMUP_BATCHES + batches; b++) {
  for (const s of subjects) {
    await s.insert()
    const pid = await s.backendPid()
    const c = b < WARMUP_BATCHES ? null : costs.get(s.name)!
    const claimed = await measured(pid, c?.claim ?? null, () => s.claim())
    if (claimed.count !== rows)
      throw new Error(`${s.name}: claimed ${claimed.count} of ${rows} rows`)
    await measured(pid, c?.complete ?? null, claimed.complete)
  }
}

const n = batches * rows
const perRow = (c: Cost) => ({
  ms: median(c.ms),
  rowUs: (median(c.ms) * 1000) / rows,
  cpuUs: (c.cpuSeconds * 1e6) / n,
  walB: c.walBytes / n,
})
const totals = (name: string) => {
  const c = costs.get(name)!
  const claim = perRow(c.claim)
  const complete = perRow(c.complete)
  return {
    claim,
    complete,
    tripUs: claim.rowUs + complete.rowUs,
    cpuUs: claim.cpuUs + complete.cpuUs,
  }
}
const ceilingTotals = totals(ceilingSubject.name)
const f1 = (x: number) => x.toFixed(1)
console.log(
  `${batches} batches of ${rows} rows per system (after ${WARMUP_BATCHES} unmeasured), the systems taking turns`,
)
console.table(
  subjects.map((s) => {
    const t = totals(s.name)
    return {
      system: s.name,
      'claim ms': f1(t.claim.ms),
      'complete ms': f1(t.complete.ms),
      'round trips µs/row': f1(t.tripUs),
      'CPU µs/row claim + complete': `${f1(t.claim.cpuUs)} + ${f1(t.complete.cpuUs)}`,
      'WAL B/row claim + complete': `${Math.round(t.claim.walB)} + ${Math.round(t.complete.walB)}`,
      'ceiling ÷ this (trips · CPU)': `${(ceilingTotals.tripUs / t.tripUs).toFixed(2)} · ${(ceilingTotals.cpuUs / t.cpuUs).toFixed(2)}`,
    }
  }),
)
console.log(
  '"ceiling ÷ this": the share of the ceiling\'s drain rate a system could reach if its statements alone bounded the drain.',
)
await Promise.all([
  ...closers.map((close) => close()),
  graphilePool.end(),
  ceilingPool.end(),
  ...[...Object.values(probes), ...otherProbes].map((p) => p.close()),
])
await cluster.stop()
