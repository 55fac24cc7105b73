// `bun run bench/claim-server-time.ts [calls]`: a pickup's claim as the server times it (execution, planning, nested statements, one call explained), ours against graphile-worker's get_job.
//
// One row committed, 15 ms, one claim of it, the variants in a new order every turn, each on a
// connection of its own: ours is the engine's exact statement (claim.ts's CLAIM_NOTIFIED, and
// CLAIM_NOTIFIED_UNOWED for a MAIL_FROM key no mailbox_pacing row has), named as the engine's
// route sends it; theirs is its batched preset's get_job, named as it sends it. Every database
// commits without waiting for its flush (the disk's flush is the same for both and the noisiest
// part on a shared machine) and tracks nested statements and planning (pg_stat_statements.track =
// all, track_planning = on). Reported: each statement's calls, plans, mean execution and planning
// time; the round trips (quartiles, and paired against our claim call by call); the server's own
// clock around our function's call (median, quartiles: not moved by the call a loaded machine
// preempts, as a mean is); and one call of each under auto_explain (analyze, buffers, triggers,
// nested statements), shown as the server's notices.
// pg_stat_statements leaves a top-level statement's executor start-up and shut-down out of its
// time, while a function's nested statement is timed whole inside the call's: graphile-worker's
// mean execution is to be set against our nested statement's, not against the function call's.
// Diagnostic variants, the same function on two copies of mailer.email_outbox: one with every
// constraint but only the three indexes a pickup's claim reads or writes (pkey, claim, sending):
// what the other ten cost a claim (opened, their index info and predicates built and tested, on
// every update of a row out of the pending ones: status is in each predicate, so it is not HOT);
// one with every index but no CHECK constraint: what the ten checks cost (Postgres builds and tests
// every check on every update, whichever columns it sets). Not options of the product.
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import { silentLogger } from '../src/log.ts'
import { CLAIM_NOTIFIED, CLAIM_NOTIFIED_UNOWED } from '../src/outbox/claim.ts'
import { startBenchCluster } from './cluster.ts'
import { percentile } from './percentiles.ts'
import { graphileSystem } from './systems/graphile.ts'
import { GET_JOB_500, NOOP_TASK_ID, GRAPHILE_SCHEMA as W } from './systems/graphile-statements.ts'
import { OUTBOX_MESSAGE } from './systems/outbox-engine.ts'
import { openProbe } from './systems/probe.ts'

const calls = Number(process.argv[2] ?? 300)
const WARMUP_CALLS = 20
const cluster = await startBenchCluster()
const databases = ['outbox', 'graphile']
for (const db of databases) {
  await cluster.createDatabase(db)
  await cluster.admin.query(`alter database ${db} set synchronous_commit = off`)
  await cluster.admin.query(`alter database ${db} set pg_stat_statements.track = 'all'`)
  await cluster.admin.query(`alter database ${db} set pg_stat_statements.track_planning = on`)
}
await migrate({ url: cluster.url('outbox'), log: silentLogger })
const outboxProbe = await openProbe(cluster.probeUrl('outbox'))
const graphileProbe = await openProbe(cluster.probeUrl('graphile'))
await graphileSystem('graphile', cluster.url('graphile'), graphileProbe, true).prepare()

// The diagnostic copies, each with the installed function's text (pg_get_functiondef), renamed.
const [def] = await outboxProbe.query<{ text: string }>(
  `select pg_get_functiondef('mailer.claim_notified(bigint,text,uuid,float8,boolean,integer)'::regprocedure) as text`,
)
// claim_few_indexes: every constraint, only the three indexes a claim reads or writes.
// claim_no_checks: every index, no CHECK constraint (LIKE keeps the NOT NULLs).
for (const [table, like] of [
  ['claim_few_indexes', 'including defaults including identity including constraints'],
  ['claim_no_checks', 'including all excluding constraints'],
]) {
  await outboxProbe.query(`create table mailer.${table} (like mailer.email_outbox ${like})`)
  await outboxProbe.query(
    def!.text
      .replace('mailer.claim_notified(', `mailer.${table}(`)
      .replaceAll('mailer.email_outbox', `mailer.${table}`),
  )
}
await outboxProbe.query(`alter table mailer.claim_few_indexes add primary key (id)`)
await outboxProbe.query(
  `create index on mailer.claim_few_indexes (priority, send_at, id) where status = 'pending'`,
)
await outboxProbe.query(`create index on mailer.claim_few_indexes (id) where status = 'sending'`)

const connect = async (db: string) => {
  const c = new pg.Client({ connectionString: cluster.url(db) })
  await c.connect()
  return c
}
await graphileProbe.query(`select graphile_worker.add_job('noop', '{}'::json)`)
const taskId = (await graphileProbe.query<{ id: number }>(NOOP_TASK_ID))[0]!.id
await graphileProbe.query(`delete from ${W}._private_jobs`)

// The server's clock around our function's call, per clocked variant, once past the warm-up.
const serverMs = new Map<string, number[]>()
let measuring = false
interface Variant {
  name: string
  database: string
  insert: () => Promise<string>
  claim: (c: pg.Client, id: string) => Promise<number>
  /** Our function's call wrapped in the server's clock (a target list is evaluated in order). */
  timed?: string
}
const insertInto = (table: string) => async () =>
  (
    await outboxProbe.query<{ id: string }>(
      `insert into mailer.${table} (message) values (${OUTBOX_MESSAGE}) returning id`,
    )
  )[0]!.id
const ours = (name: string, text: string, extra: unknown[], table = 'email_outbox'): Variant => ({
  name,
  database: 'outbox',
  insert: insertInto(table),
  claim: async (c, id) => {
    const values = [id, 'claim-server', crypto.randomUUID(), 60, true, 5, ...extra]
    const r = await c.query<{ claim: string; t0?: number; t1?: number }>({ name, text, values })
    const row = r.rows[0]!
    if (measuring && row.t0 !== undefined) {
      if (!serverMs.has(name)) serverMs.set(name, [])
      serverMs.get(name)!.push(row.t1! - row.t0)
    }
    return JSON.parse(row.claim).length
  },
})
const clocked = (fn: string) =>
  `select extract(epoch from clock_timestamp())::float8 * 1000 as t0,
          mailer.${fn}($1::bigint, $2::text, $3::uuid, $4::float8, $5::boolean, $6::int)::text as claim,
          extract(epoch from clock_timestamp())::float8 * 1000 as t1`
const variants: Variant[] = [
  ours('claim_notified', CLAIM_NOTIFIED, []),
  ours('claim_notified, MAIL_FROM guard', CLAIM_NOTIFIED_UNOWED, ['no-pacing-row', 1000]),
  ours('server clock: claim_notified', clocked('claim_notified'), []),
  ours(
    'server clock: a copy with 3 indexes',
    clocked('claim_few_indexes'),
    [],
    'claim_few_indexes',
  ),
  ours('server clock: a copy without checks', clocked('claim_no_checks'), [], 'claim_no_checks'),
  {
    name: 'graphile get_job',
    database: 'graphile',
    insert: async () => {
      await graphileProbe.query(`select graphile_worker.add_job('noop', '{}'::json)`)
      return ''
    },
    claim: async (c) =>
      (await c.query({ name: 'get_job500', text: GET_JOB_500, values: ['claim-server', [taskId]] }))
        .rows.length,
  },
]
const clients = new Map<string, pg.Client>()
for (const v of variants) clients.set(v.name, await connect(v.database))

// One call each under auto_explain, on a connection of its own, after two unexplained ones.
for (const v of variants.filter((x) => x.name === 'claim_notified' || x.database === 'graphile')) {
  const c = await connect(v.database)
  const notices: string[] = []
  c.on('notice', (n) => notices.push(n.message ?? ''))
  for (const s of [
    `load 'auto_explain'`,
    'set auto_explain.log_min_duration = 0',
    'set auto_explain.log_analyze = on',
    'set auto_explain.log_buffers = on',
    'set auto_explain.log_triggers = on',
    'set auto_explain.log_nested_statements = on',
    'set auto_explain.log_level = notice',
  ])
    await c.query(s)
  for (let i = 0; i < 3; i++) {
    notices.length = 0
    await v.claim(c, await v.insert())
  }
  console.log(`=== ${v.name}: auto_explain of its third call\n${notices.join('\n---\n')}\n`)
  await c.end()
}

const shuffled = <T>(xs: readonly T[]): T[] => {
  const out = [...xs]
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[out[i], out[j]] = [out[j]!, out[i]!]
  }
  return out
}
const tripMs = new Map<string, number[]>(variants.map((v) => [v.name, []]))
for (let i = 0; i < WARMUP_CALLS + calls; i++) {
  if (i === WARMUP_CALLS) await cluster.admin.query('select pg_stat_statements_reset()')
  measuring = i >= WARMUP_CALLS
  for (const v of shuffled(variants)) {
    const id = await v.insert()
    await Bun.sleep(15)
    const c = clients.get(v.name)!
    const t0 = performance.now()
    const got = await v.claim(c, id)
    const ms = performance.now() - t0
    if (got !== 1) throw new Error(`${v.name}: claimed ${got} rows, expected 1`)
    if (i >= WARMUP_CALLS) tripMs.get(v.name)!.push(ms)
  }
}
const stats = await cluster.admin.query<{
  db: string
  toplevel: boolean
  calls: string
  plans: string
  mean_exec: number
  mean_plan: number
  query: string
}>(
  `select d.datname as db, s.toplevel, s.calls, s.plans, s.mean_exec_time as mean_exec,
          s.mean_plan_time as mean_plan, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 64) as query
     from pg_stat_statements s join pg_database d on d.oid = s.dbid join pg_roles r on r.oid = s.userid
    where d.datname = any($2) and r.rolname <> 'bench_probe' and s.calls >= $1
    order by d.datname, s.toplevel desc, s.mean_exec_time desc`,
  [calls, databases],
)
const indexes = await Promise.all(
  [
    [outboxProbe, 'mailer.email_outbox'],
    [graphileProbe, `${W}._private_jobs`],
  ].map(async ([p, t]) => {
    const rows = await (p as typeof outboxProbe).query<{ n: string }>(
      `select count(*) as n from pg_index where indrelid = '${t}'::regclass`,
    )
    return `${t}: ${rows[0]!.n} indexes`
  }),
)
const fmt = (x: number) => x.toFixed(3)
const first = tripMs.get(variants[0]!.name)!
console.log(`${calls} calls per variant, one committed row each, in turns; ${indexes.join(', ')}`)
console.table(
  variants.map((v) => {
    const t = tripMs.get(v.name)!
    const s = serverMs.get(v.name)
    return {
      claim: v.name,
      'trip p25 / median / p75': [25, 50, 75].map((q) => fmt(percentile(t, q))).join(' / '),
      'paired − first: p25 / median / p75': [25, 50, 75]
        .map((q) =>
          fmt(
            percentile(
              t.map((x, i) => x - first[i]!),
              q,
            ),
          ),
        )
        .join(' / '),
      'server clock p25 / median / p75': s
        ? [25, 50, 75].map((q) => fmt(percentile(s, q))).join(' / ')
        : '',
    }
  }),
)
console.table(
  stats.rows.map((r) => ({
    db: r.db,
    top: r.toplevel,
    calls: Number(r.calls),
    plans: Number(r.plans),
    'mean exec ms': fmt(r.mean_exec),
    'mean plan ms': fmt(r.mean_plan),
    query: r.query,
  })),
)
await Promise.all([...clients.values()].map((c) => c.end()))
await Promise.all([outboxProbe.close(), graphileProbe.close()])
await cluster.stop()
