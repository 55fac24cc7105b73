// `bun run bench/claim-trip.ts [calls]`: a pickup's claim round trip, ours against graphile-worker's, on one cluster.
//
// One row is committed, 15 ms pass (as between rows arriving at 50/s), then one claim fetches it;
// the variants take turns call by call. Reported: the client's round trip (median, quartiles) and
// pg_stat_statements' mean execution time after a warm-up. The two measure different things: a
// statement's own executor start-up and shut-down (opening the table and its indexes, building
// the plan's state) are outside pg_stat_statements' timing, while the statements a function runs
// are timed whole, start-up included, inside the call's. So a claim in a function looks slower
// there than the same work sent as one statement; the round trip is the fair comparison.

import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import { openDb } from '../src/db/open.ts'
import { silentLogger } from '../src/log.ts'
import { claimBatch } from '../src/outbox/claim.ts'
import { startBenchCluster } from './cluster.ts'
import { median, percentile } from './percentiles.ts'
import { graphileSystem } from './systems/graphile.ts'
import { GET_JOB_500, NOOP_TASK_ID, GRAPHILE_SCHEMA as W } from './systems/graphile-statements.ts'
import { OUTBOX_MESSAGE } from './systems/outbox-engine.ts'
import { openProbe } from './systems/probe.ts'

const calls = Number(process.argv[2] ?? 200)
const WARMUP_CALLS = 10
const cluster = await startBenchCluster()
await cluster.createDatabase('outbox')
await cluster.createDatabase('graphile')
await migrate({ url: cluster.url('outbox'), log: silentLogger })
// Inserts and clean-up go through the probe role, left out of the statement counts.
const outboxProbe = await openProbe(cluster.probeUrl('outbox'))
const graphileProbe = await openProbe(cluster.probeUrl('graphile'))
await graphileSystem('graphile', cluster.url('graphile'), graphileProbe, true).prepare()

const ours = openDb({
  name: 'outbox',
  url: cluster.url('outbox'),
  log: silentLogger,
  maxConnections: 1,
})
// graphile-worker checks a client out of its pg.Pool for each get_job (withPgClient).
const theirs = new pg.Pool({ connectionString: cluster.url('graphile'), max: 1 })
await graphileProbe.query(`select graphile_worker.add_job('noop', '{}'::json)`)
const taskId = (await graphileProbe.query<{ id: number }>(NOOP_TASK_ID))[0]!.id
await graphileProbe.query('delete from graphile_worker._private_jobs')

interface Variant {
  name: string
  insert: () => Promise<unknown>
  claim: () => Promise<number>
  cleanUp: () => Promise<unknown>
}
const outboxVariant = (name: string, markStarted: boolean): Variant => ({
  name,
  insert: () =>
    outboxProbe.query(`insert into mailer.email_outbox (message) values (${OUTBOX_MESSAGE})`),
  claim: async () =>
    (
      await claimBatch(ours.db, {
        limit: 500,
        workerId: 'claim-trip',
        leaseSeconds: 60,
        defaultMaxAttempts: 5,
        markStarted,
      })
    ).leases.length,
  cleanUp: () => outboxProbe.query('delete from mailer.email_outbox'),
})
const pooled = async <T>(pool: pg.Pool, run: (c: pg.PoolClient) => Promise<T>): Promise<T> => {
  const c = await pool.connect()
  try {
    return await run(c)
  } finally {
    c.release()
  }
}
const variants: Variant[] = [
  outboxVariant('outbox-mailer claimBatch (file, discard: commit waits for its flush)', true),
  outboxVariant('outbox-mailer claimBatch (Graph: commit without waiting)', false),
  {
    // The same statement as the first, through the same pool, without Kysely (diagnostic).
    ...outboxVariant('outbox-mailer claim statement, pg pool only', true),
    claim: () =>
      pooled(ours.pool, async (c) => {
        const r = await c.query<{ claim: { leases: unknown[] } }>({
          name: 'claim_trip_claim_batch',
          text: 'select mailer.claim_batch($1::int, $2::text, $3::uuid, $4::float8, true, $5::int) as claim',
          values: [500, 'claim-trip', crypto.randomUUID(), 60, 5],
        })
        return r.rows[0]!.claim.leases.length
      }),
  },
  {
    name: 'graphile-worker get_job, batch 500, pg pool',
    insert: () => graphileProbe.query(`select graphile_worker.add_job('noop', '{}'::json)`),
    claim: () =>
      pooled(theirs, async (c) => {
        const r = await c.query({
          name: 'get_job500',
          text: GET_JOB_500,
          values: ['claim-trip', [taskId]],
        })
        return r.rows.length
      }),
    cleanUp: () => graphileProbe.query(`delete from ${W}._private_jobs`),
  },
]

const times = new Map<string, number[]>(variants.map((v) => [v.name, []]))
for (let i = 0; i < WARMUP_CALLS + calls; i++) {
  if (i === WARMUP_CALLS) await cluster.admin.query('select pg_stat_statements_reset()')
  for (const v of variants) {
    await v.insert()
    await Bun.sleep(15)
    const t0 = performance.now()
    const got = await v.claim()
    const ms = performance.now() - t0
    if (got !== 1) throw new Error(`${v.name}: claimed ${got} rows, expected 1`)
    if (i >= WARMUP_CALLS) times.get(v.name)!.push(ms)
    await v.cleanUp()
  }
}

const executions = await cluster.admin.query<{
  db: string
  calls: string
  mean_ms: number
  query: string
}>(
  `select d.datname as db, s.calls, s.mean_exec_time as mean_ms, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 60) as query
     from pg_stat_statements s join pg_database d on d.oid = s.dbid join pg_roles r on r.oid = s.userid
    where d.datname in ('outbox', 'graphile') and r.rolname <> 'bench_probe' and s.calls >= $1
    order by s.mean_exec_time desc`,
  [calls],
)
const fmt = (x: number) => x.toFixed(3)
console.log(`${calls} calls per variant, one committed row each, the variants taking turns`)
console.table(
  variants.map((v) => {
    const t = times.get(v.name)!
    return {
      claim: v.name,
      'p25 ms': fmt(percentile(t, 25)),
      'median ms': fmt(median(t)),
      'p75 ms': fmt(percentile(t, 75)),
    }
  }),
)
console.table(
  executions.rows.map((r) => ({
    db: r.db,
    calls: Number(r.calls),
    'mean exec ms': fmt(r.mean_ms),
    query: r.query,
  })),
)
await Promise.all([outboxProbe.close(), graphileProbe.close(), theirs.end(), ours.close()])
await cluster.stop()
