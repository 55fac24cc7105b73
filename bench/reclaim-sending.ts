// `bun run bench/reclaim-sending.ts [reps] [settled] [expired]`: the reclaim's plan, time and buffers with 10,000 rows sending beside a million settled.
//
// One database: `settled` rows sent (default 1,000,000), then 10,000 `sending` under one live
// worker's lease key, leases an hour out but for `expired` of them spread among the rest (default
// 0: the idle reclaim), whose leases ended a minute ago, vacuumed and analyzed. The reclaim as
// lease-upkeep.ts runs it (beat, expiry sweep, stale probes; at most 1,000 rows), `reps` times
// (default 20), each in a transaction rolled back after it, through auto_explain (analyze, buffers,
// no per-node timing, whose clock reads per row would dwarf the scans) on the session.
// RECLAIM_FROM=<another checkout> adds that checkout's reclaim, the two taking turns. Printed for
// each: the median execution time and shared buffers (hit + read), each scan of email_outbox in its
// last plan, and with RECLAIM_PLAN=1 the last plan; then whether their rows reclaimed agree.

import { resolve } from 'node:path'
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import { silentLogger } from '../src/log.ts'
import { EXPIRY_SWEEP_LIMIT } from '../src/outbox/expiry-sweep.ts'
import { reclaimExpired } from '../src/outbox/reclaim.ts'
import { startBenchCluster } from './cluster.ts'
import { openExplainedDb, planCost } from './explained-db.ts'
import { median } from './percentiles.ts'

const reps = Number(process.argv[2] ?? 20)
const SETTLED = Number(process.argv[3] ?? 1_000_000)
const EXPIRED = Number(process.argv[4] ?? 0)
const SENDING = 10_000
const DB = 'outbox_reclaim_sending'
const worker = {
  id: 'bench-host:1234:0a0b0c',
  host: 'bench-host',
  pid: 1234,
  version: 'bench',
  leaseKey: 'k00',
  probeMailbox: '',
}

class Rollback extends Error {}

const cluster = await startBenchCluster()
try {
  await cluster.createDatabase(DB)
  await migrate({ url: cluster.url(DB), log: silentLogger })
  const setup = new pg.Client({ connectionString: cluster.url(DB) })
  await setup.connect()
  await setup.query(
    `insert into mailer.workers (id, host, pid, version, lease_key) values ($1, 'h', 1, 'v', $2)`,
    [worker.id, worker.leaseKey],
  )
  await setup.query(
    `insert into mailer.email_outbox (message, status, attempts, sent_at)
     select jsonb_build_object('to', 'a@example.com', 'subject', 's', 'text', 't'), 'sent', 1, now()
       from generate_series(1, $1::int) g`,
    [SETTLED],
  )
  await setup.query(
    `insert into mailer.email_outbox (message, status, attempts, lease_owner, lease_token, lease_expires_at)
     select jsonb_build_object('to', 'a@example.com', 'subject', 's', 'text', 't'), 'sending', 1,
            $2, gen_random_uuid(), now() + interval '1 hour'
       from generate_series(1, $1::int) g`,
    [SENDING, worker.leaseKey],
  )
  await setup.query(
    `update mailer.email_outbox set lease_expires_at = now() - interval '1 minute'
      where status = 'sending' and id % ($1::int / $2::int) = 0`,
    [SENDING, Math.max(EXPIRED, 1)],
  )
  if (EXPIRED === 0)
    await setup.query(
      `update mailer.email_outbox set lease_expires_at = now() + interval '1 hour' where status = 'sending'`,
    )
  await setup.query('vacuum (analyze) mailer.email_outbox, mailer.workers')
  await setup.end()

  const { db, notices } = await openExplainedDb(cluster.url(DB), { timing: false })

  type Reclaim = typeof reclaimExpired
  // liveSeconds: what a checkout before migration 0084 (RECLAIM_FROM=76aad23) reads; this one ignores it.
  const STALE_PROBES = { ownMailbox: '', liveSeconds: 120 }
  const variants: Record<string, Reclaim> = { 'this checkout': reclaimExpired }
  if (process.env.RECLAIM_FROM) {
    const other = resolve(process.env.RECLAIM_FROM, 'src/outbox/reclaim.ts')
    variants[process.env.RECLAIM_FROM] = (
      (await import(other)) as { reclaimExpired: Reclaim }
    ).reclaimExpired
  }
  const seen = Object.fromEntries(
    Object.keys(variants).map((k) => [
      k,
      { ms: [] as number[], buffers: [] as number[], plan: '', reclaimed: '' },
    ]),
  )
  for (let i = 0; i < reps; i++) {
    // A rotating order: neither variant always runs first.
    const names = Object.keys(variants)
    if (i % 2) names.reverse()
    for (const name of names) {
      notices.length = 0
      const s = seen[name]!
      await db
        .transaction()
        .execute(async (t) => {
          const r = await variants[name]!(t, {
            defaultMaxAttempts: 8,
            limit: 1000,
            beat: worker,
            sweep: { workerId: worker.id, limit: EXPIRY_SWEEP_LIMIT },
            staleProbes: STALE_PROBES,
          })
          s.reclaimed = JSON.stringify(r.rows)
          throw new Rollback()
        })
        .catch((e) => {
          if (!(e instanceof Rollback)) throw e
        })
      const plan = notices.join('\n')
      s.plan = plan
      const cost = planCost(plan)
      s.ms.push(cost.ms)
      s.buffers.push(cost.buffers)
    }
  }
  for (const [name, s] of Object.entries(seen)) {
    console.log(
      `${name}: reclaim, ${SENDING} sending (${EXPIRED} expired) beside ${SETTLED} settled: ${JSON.parse(s.reclaimed).length} reclaimed, median ${median(s.ms).toFixed(3)} ms, ${median(s.buffers)} shared buffers (hit + read); ${reps} runs`,
    )
    const scans = s.plan
      .split('\n')
      .filter((l) => /Scan.* on email_outbox|Scan using email_outbox/.test(l))
      .map((l) => l.trim())
    console.log(`  scans of email_outbox:\n    ${scans.join('\n    ')}`)
    if (process.env.RECLAIM_PLAN) console.log(`\n  last plan:\n${s.plan}`)
  }
  const answers = new Set(Object.values(seen).map((s) => s.reclaimed))
  console.log(answers.size === 1 ? 'rows reclaimed agree' : 'rows reclaimed DIFFER')
  await db.destroy()
} finally {
  await cluster.stop()
}
