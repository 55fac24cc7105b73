// `bun run bench/heartbeat-beat.ts [reps]`: the heartbeat statement's and the idle reclaim's plans (they carry the registry beat) with 50 live workers and 10,000 leased rows.
//
// One database: 50 registry entries, each with its lease key, and 10,000 rows `sending`, 200 leased
// under each key. One worker's heartbeat of its 200 leases (extendReachableLeases), then the
// reclaim with its beat and nothing expired, `reps` times each (default 20), through auto_explain
// (analyze, buffers) on the session: the statement runs as the worker runs it, its plan comes back
// as a notice. Printed: the median execution time and shared buffers of each and of its beat's
// CTEs, and the last plans.
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import { silentLogger } from '../src/log.ts'
import { extendReachableLeases } from '../src/outbox/heartbeat.ts'
import { reclaimExpired } from '../src/outbox/reclaim.ts'
import { startBenchCluster } from './cluster.ts'
import { openExplainedDb, planCost } from './explained-db.ts'
import { median } from './percentiles.ts'

const reps = Number(process.argv[2] ?? 20)
const DB = 'outbox_heartbeat_beat'
const WORKERS = 50
const PER_WORKER = 200
const keyOf = (w: number) => `k${String(w).padStart(2, '0')}`
const worker = { id: 'bench-host:1234:0a0b0c', host: 'bench-host', pid: 1234, version: 'bench' }

/** The registry beat's CTEs in a plan (each `CTE beat…`): their top node's time and shared buffers, summed. */
function beatOf(plan: string): { ms: number; buffers: number } {
  let ms = 0
  let buffers = 0
  for (const section of plan.split(/\n\s*CTE /).slice(1)) {
    if (!section.startsWith('beat')) continue
    ms += Number(/actual time=[\d.]+\.\.([\d.]+)/.exec(section)?.[1] ?? 0)
    buffers += Number(/Buffers: shared hit=(\d+)/.exec(section)?.[1] ?? 0)
  }
  return { ms, buffers }
}

const cluster = await startBenchCluster()
try {
  await cluster.createDatabase(DB)
  await migrate({ url: cluster.url(DB), log: silentLogger })
  const setup = new pg.Client({ connectionString: cluster.url(DB) })
  await setup.connect()
  await setup.query(
    `insert into mailer.workers (id, host, pid, version, lease_key)
     select case when g = 0 then $2 else 'host-' || g || ':1:000000' end, 'h', 1, 'v',
            'k' || lpad(g::text, 2, '0')
       from generate_series(0, $1::int - 1) g`,
    [WORKERS, worker.id],
  )
  await setup.query(
    `insert into mailer.email_outbox (message, status, attempts, lease_owner, lease_token, lease_expires_at)
     select jsonb_build_object('to', 'a@example.com', 'subject', 's', 'text', 't'), 'sending', 1,
            'k' || lpad(((g - 1) / $2::int)::text, 2, '0'), gen_random_uuid(), now() + interval '1 hour'
       from generate_series(1, $1::int * $2::int) g`,
    [WORKERS, PER_WORKER],
  )
  await setup.query('vacuum (analyze) mailer.email_outbox, mailer.workers')
  const { rows: held } = await setup.query<{ id: string; token: string }>(
    `select id::text, lease_token::text as token from mailer.email_outbox
      where lease_owner = $1 order by id`,
    [keyOf(0)],
  )
  await setup.end()

  const { db, notices } = await openExplainedDb(cluster.url(DB), { timing: true })

  const keyed = { ...worker, leaseKey: keyOf(0) }
  const runs = {
    heartbeat: () => extendReachableLeases(db, keyed, held, 60),
    'idle reclaim': () => reclaimExpired(db, { defaultMaxAttempts: 8, beat: keyed }),
  }
  const last: Record<string, string> = {}
  for (const [name, run] of Object.entries(runs)) {
    const ms: number[] = []
    const buffers: number[] = []
    const beatMs: number[] = []
    const beatBuffers: number[] = []
    for (let i = 0; i < reps; i++) {
      notices.length = 0
      await run()
      const plan = notices.join('\n')
      const cost = planCost(plan)
      ms.push(cost.ms)
      buffers.push(cost.buffers)
      const beat = beatOf(plan)
      beatMs.push(beat.ms)
      beatBuffers.push(beat.buffers)
      last[name] = plan
    }
    console.log(
      `${name}: median ${median(ms).toFixed(3)} ms, ${median(buffers)} shared buffers (hit + read); its beat ${median(beatMs).toFixed(3)} ms, ${median(beatBuffers)} buffers; ${reps} runs`,
    )
  }
  for (const [name, plan] of Object.entries(last)) console.log(`\n${name}, last plan:\n${plan}`)
  await db.destroy()
} finally {
  await cluster.stop()
}
