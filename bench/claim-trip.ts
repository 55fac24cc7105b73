// `bun run bench/claim-trip.ts [calls] [flushed|unflushed] [before.sql]`: a pickup's claim round trip, ours against graphile-worker's, on one cluster.
//
// One row is committed, 15 ms pass (as between rows arriving at 50/s), then one claim fetches it;
// the variants take turns call by call, in a new order every turn. Reported: the client's round
// trip (median, quartiles) and pg_stat_statements' mean execution time after a warm-up. The two
// measure different things: a statement's own executor start-up and shut-down (opening the table
// and its indexes, building the plan's state) are outside pg_stat_statements' timing, while the
// statements a function runs are timed whole, start-up included, inside the call's. So a claim in
// a function looks slower there than the same work sent as one statement; the round trip is the
// fair comparison.
// A pickup with no backlog claims the row its notification names (claim_notified, sql/0030): those
// variants are also paired with the same claim without it ("its pair").
// `unflushed`: every commit without waiting for its WAL flush, and the statements a function runs
// timed one by one (pg_stat_statements.track = all): the claims' own work without the disk's flush,
// the same for every claim and, on a shared machine, the noisiest part of a round trip.
// `before.sql` (e.g. sql/0006_claim_by_priority.sql): one more variant, the claim statement calling
// mailer.claim_batch as that file defines it (renamed, beside this checkout's, on the same table);
// between two versions of one function, whose nested statements are both timed in the call, the
// mean execution time compares like with like.

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
const unflushed = process.argv[3] === 'unflushed'
const beforeFile = process.argv[4]
const WARMUP_CALLS = 10
const cluster = await startBenchCluster()
const databases = ['outbox', 'graphile']
for (const db of databases) await cluster.createDatabase(db)
if (unflushed) {
  for (const db of databases) {
    await cluster.admin.query(`alter database ${db} set synchronous_commit = off`)
    await cluster.admin.query(`alter database ${db} set pg_stat_statements.track = 'all'`)
  }
}
await migrate({ url: cluster.url('outbox'), log: silentLogger })
// The former claim beside this checkout's, in the same database and table (a table's dead entries
// weigh on each claim alike): that file's mailer.claim_batch, renamed.
if (beforeFile) {
  const text = (await Bun.file(beforeFile).text()).replaceAll(
    'function mailer.claim_batch(',
    'function mailer.claim_batch_before(',
  )
  if (!text.includes('mailer.claim_batch_before(')) {
    throw new Error(`${beforeFile} does not define mailer.claim_batch`)
  }
  const c = new pg.Client({ connectionString: cluster.url('outbox') })
  await c.connect()
  await c.query(text)
  await c.end()
}
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
// The engine's own way: its statements take the statement route, on the LISTEN session when free
// (src/db/statement-route.ts); here a session that listens on nothing stands in for it.
const routed = openDb({
  name: 'outbox-routed',
  url: cluster.url('outbox'),
  log: silentLogger,
  maxConnections: 1,
  shareListenSession: true,
})
const session = routed.listenSession!.newClient('claim-trip')
await session.connect()
routed.listenSession!.attach(session)
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
  /** The variant this one is paired with call by call (the same claim without a notified row). */
  against?: string
}
// The id of the row inserted last: what its notification names (sql/0030).
let insertedId = '0'
const outboxVariant = (
  name: string,
  markStarted: boolean,
  db = ours.db,
  named = false,
): Variant => ({
  name,
  insert: async () => {
    const [row] = await outboxProbe.query<{ id: string }>(
      `insert into mailer.email_outbox (message) values (${OUTBOX_MESSAGE}) returning id`,
    )
    insertedId = row!.id
  },
  claim: async () =>
    (
      await claimBatch(db, {
        limit: 500,
        workerId: 'claim-trip',
        leaseSeconds: 60,
        defaultMaxAttempts: 5,
        markStarted,
        ...(named && { notifiedId: insertedId }),
      })
    ).leases.length,
  cleanUp: () => outboxProbe.query('delete from mailer.email_outbox'),
})
// The function's own time in the server, per call: a median of these is not moved by the rare call
// that a loaded machine preempts, as pg_stat_statements' mean is.
const serverTimes = new Map<string, number[]>()
let measuring = false
// Our claim statement sent as is on a pooled client (prepared, as the engine's is), its call timed
// by the server's clock on either side (a target list is evaluated in order).
const claimStatement = (fn: string, name: string) => async (c: pg.PoolClient) => {
  const r = await c.query<{ t0: number; claim: { leases: unknown[] }; t1: number }>({
    name: `claim_trip_${fn}`,
    text: `select extract(epoch from clock_timestamp())::float8 * 1000 as t0,
                  mailer.${fn}($1::int, $2::text, $3::uuid, $4::float8, true, $5::int) as claim,
                  extract(epoch from clock_timestamp())::float8 * 1000 as t1`,
    values: [500, 'claim-trip', crypto.randomUUID(), 60, 5],
  })
  const row = r.rows[0]!
  if (measuring) {
    if (!serverTimes.has(name)) serverTimes.set(name, [])
    serverTimes.get(name)!.push(row.t1 - row.t0)
  }
  return row.claim.leases.length
}
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
  outboxVariant(
    "outbox-mailer claimBatch (file), the statement route's session (the engine's way)",
    true,
    routed.statements.db,
  ),
  // A pickup as the engine makes one with no backlog: the row its notification names, alone
  // (sql/0030), each paired with the same claim without it.
  {
    ...outboxVariant(
      "outbox-mailer claimBatch (file), the notified row (claim_notified), the route's session",
      true,
      routed.statements.db,
      true,
    ),
    against: "outbox-mailer claimBatch (file), the statement route's session (the engine's way)",
  },
  {
    // A/A: the engine's way once more, paired with itself: the spread a pairing shows by chance.
    ...outboxVariant(
      "outbox-mailer claimBatch (file), the route's session again (A/A)",
      true,
      routed.statements.db,
    ),
    against: "outbox-mailer claimBatch (file), the statement route's session (the engine's way)",
  },
  {
    ...outboxVariant(
      'outbox-mailer claimBatch (Graph), the notified row (claim_notified)',
      false,
      ours.db,
      true,
    ),
    against: 'outbox-mailer claimBatch (Graph: commit without waiting)',
  },
  {
    // The first variant's call, through the same pool, without Kysely (diagnostic), and timed by the
    // server's clock too.
    ...outboxVariant('outbox-mailer claim statement, pg pool only', true),
    claim: () =>
      pooled(
        ours.pool,
        claimStatement('claim_batch', 'outbox-mailer claim statement, pg pool only'),
      ),
  },
  ...(beforeFile
    ? [
        {
          ...outboxVariant(`the same, as ${beforeFile} defines it`, true),
          claim: () =>
            pooled(
              ours.pool,
              claimStatement('claim_batch_before', `the same, as ${beforeFile} defines it`),
            ),
        },
      ]
    : []),
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
  {
    // What any statement costs: the floor under both claims (prepared, on the same pool).
    name: 'select 1, pg pool (a round trip, nothing claimed)',
    insert: async () => {},
    claim: () =>
      pooled(ours.pool, async (c) => {
        const r = await c.query({ name: 'claim_trip_floor', text: 'select 1 as one' })
        return r.rows.length
      }),
    cleanUp: async () => {},
  },
]

const shuffled = <T>(xs: readonly T[]): T[] => {
  const out = [...xs]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}
const times = new Map<string, number[]>(variants.map((v) => [v.name, []]))
for (let i = 0; i < WARMUP_CALLS + calls; i++) {
  if (i === WARMUP_CALLS) await cluster.admin.query('select pg_stat_statements_reset()')
  measuring = i >= WARMUP_CALLS
  // In a new order every turn: what ran just before (another database's claim, another connection)
  // changes a round trip, and a fixed order charged it to the same variant every time: the A/A pair
  // of the engine's way, one after a pooled connection's claim and one after the route's, read
  // -0.18 and -0.20 ms paired in two runs (round 29).
  for (const v of shuffled(variants)) {
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
  `select d.datname as db, s.calls, s.mean_exec_time as mean_ms, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 90) as query
     from pg_stat_statements s join pg_database d on d.oid = s.dbid join pg_roles r on r.oid = s.userid
    where d.datname = any($2) and r.rolname <> 'bench_probe' and s.calls >= $1
    order by s.mean_exec_time desc`,
  [calls, databases],
)
const fmt = (x: number) => x.toFixed(3)
console.log(`${calls} calls per variant, one committed row each, the variants taking turns`)
// Call by call against the first variant (same turn, same moment of the machine): steadier than a
// difference of medians on a loaded machine.
const first = times.get(variants[0]!.name)!
console.table(
  variants.map((v) => {
    const t = times.get(v.name)!
    return {
      claim: v.name,
      'p25 ms': fmt(percentile(t, 25)),
      'median ms': fmt(median(t)),
      'p75 ms': fmt(percentile(t, 75)),
      'paired − first, median ms': fmt(median(t.map((x, i) => x - first[i]!))),
      // What claim_notified buys: against the same claim without a notified row.
      'paired − its pair, median ms': v.against
        ? fmt(median(t.map((x, i) => x - times.get(v.against!)![i]!)))
        : '',
      'server median ms': serverTimes.has(v.name) ? fmt(median(serverTimes.get(v.name)!)) : '',
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
await routed.listenSession!.detach()
await session.end()
await Promise.all([
  outboxProbe.close(),
  graphileProbe.close(),
  theirs.end(),
  ours.close(),
  routed.close(),
])
await cluster.stop()
