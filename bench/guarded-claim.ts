// `bun run bench/guarded-claim.ts [rounds] [claims] [batch]`: what MAIL_FROM's guard adds to a Graph worker's claim, the variants taking turns.
//
// A Graph worker with MAIL_FROM claims through outbox_claim_unflushed_unowed (sql/0062): before
// claim_unflushed it reads MAIL_FROM's mailbox_pacing row by its primary key. The benchmark's drains
// run the open gate and never read it. This claims `batch` pending rows at a time on one connection
// (openDb's, its statements prepared as a worker's), `claims` claims per variant per round, the
// variants taking turns round by round: unguarded (no MAIL_FROM), guarded with no pacing row
// (MAILBOX_RATE_PER_MINUTE=0, never throttled), guarded with a pacing row whose turn is past (a
// paced sender). Reported per variant from pg_stat_statements (its statements alone): calls,
// statements per claimed row, mean execution time, shared buffers per call; and the client's
// median round trip. The claimed rows stay sending (the settlement is the same either way).
import { sql } from 'kysely'
import { migrate } from '../src/db/migrate.ts'
import { openDb } from '../src/db/open.ts'
import { silentLogger } from '../src/log.ts'
import { claimBatch } from '../src/outbox/claim.ts'
import { startBenchCluster } from './cluster.ts'
import { median } from './percentiles.ts'
import { addCounted, statementStats } from './statement-stats.ts'
import { rotated } from './turns.ts'

const rounds = Number(process.argv[2] ?? 10)
const claims = Number(process.argv[3] ?? 50)
const batch = Number(process.argv[4] ?? 10)
const DB = 'outbox_guarded_claim'
const VARIANTS = [
  { name: 'unguarded', key: null },
  { name: 'guarded, no pacing row', key: 'none@example.com' },
  { name: 'guarded, pacing row', key: 'paced@example.com' },
] as const

const cluster = await startBenchCluster()
try {
  await cluster.createDatabase(DB)
  await migrate({ url: cluster.url(DB), log: silentLogger })
  const h = openDb({ name: 'bench', url: cluster.url(DB), log: silentLogger, maxConnections: 1 })
  try {
    await sql`insert into mailer.email_outbox (message)
              select jsonb_build_object('to', 'a@example.com', 'subject', 's', 'text', 't')
                from generate_series(1, ${(rounds * claims + 1) * batch * VARIANTS.length}::int)`.execute(
      h.db,
    )
    await sql`insert into mailer.mailbox_pacing (mailbox, next_at) values ('paced@example.com', now() - interval '1 minute')`.execute(
      h.db,
    )
    await sql`vacuum (analyze) mailer.email_outbox, mailer.mailbox_pacing`.execute(h.db)
    const claim = (key: string | null) =>
      claimBatch(h.db, {
        limit: batch,
        workerId: 'k00',
        leaseSeconds: 60,
        defaultMaxAttempts: 8,
        markStarted: false,
        ...(key ? { mailFromGuard: { key, holdMs: 2_000 } } : {}),
      })
    // Prepared and planned on the connection before anything is counted.
    for (const v of VARIANTS) await claim(v.key)
    await cluster.admin.query('select pg_stat_statements_reset()')
    const trips = VARIANTS.map(() => [] as number[])
    const stats = VARIANTS.map(() => ({ calls: 0, ms: 0, buffers: 0, rows: 0 }))
    for (let r = 0; r < rounds; r++) {
      // In a rotating order: each claim passes over the index entries of the rows claimed before it.
      for (const i of rotated([0, 1, 2], r)) {
        const v = VARIANTS[i]!
        const before = await claimStats(v.key !== null)
        let rows = 0
        for (let c = 0; c < claims; c++) {
          const t0 = performance.now()
          const got = await claim(v.key)
          trips[i]!.push(performance.now() - t0)
          rows += got.leases.length
        }
        addCounted(stats[i]!, before, await claimStats(v.key !== null))
        stats[i]!.rows += rows
      }
    }
    for (const [i, v] of VARIANTS.entries()) {
      const s = stats[i]!
      console.log(
        `${v.name}: ${s.calls} calls, ${s.rows} rows (${(s.calls / s.rows).toFixed(3)} statements per row); mean execution ${(s.ms / s.calls).toFixed(3)} ms, ${(s.buffers / s.calls).toFixed(1)} shared buffers per call; round trip median ${median(trips[i]!).toFixed(3)} ms`,
      )
    }
  } finally {
    await h.close()
  }

  // The guarded claim is the one that reads mailbox_pacing.
  function claimStats(guarded: boolean) {
    return statementStats(cluster.admin, DB, '%mailer.claim_unflushed(%', {
      like: '%mailbox_pacing%',
      matches: guarded,
    })
  }
} finally {
  await cluster.stop()
}
