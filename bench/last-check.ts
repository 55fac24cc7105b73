// `bun run bench/last-check.ts [rounds] [checks]`: what the 'pacing rate' read adds to a Graph worker's unpaced last check, against round 38's statement, taking turns.
//
// An unpaced Graph worker (MAILBOX_RATE_PER_MINUTE=0: the pg gate leaves the pause to the check)
// asks startSends for one row at a time with its mailbox, outbox_start_sends_unpaused. Round 39
// (e33f045) made that statement also read the rate every worker paces by ('pacing rate', by
// mailbox_pacing's primary key), so that a newer worker's rate is read where a pause is. The
// benchmark's engine runs the open gate, whose claim records the start: it runs no last check. This
// claims rows (not started) and checks each alone on one prepared connection, `checks` checks per
// variant per round, the variants taking turns in a rotating order: round 38's statement (f3dae46,
// under its own prepared name) and this checkout's startSends, each with no pacing row for the
// mailbox and no rate noted (a worker of 0), then both again with a rate of 0 noted (the 'pacing
// rate' row present, as after any start). Reported per variant from pg_stat_statements: calls,
// mean execution time, shared buffers per call; and the client's median round trip.
import { sql } from 'kysely'
import { migrate } from '../src/db/migrate.ts'
import { openDb } from '../src/db/open.ts'
import { statementText } from '../src/db/single-statement-db.ts'
import { silentLogger } from '../src/log.ts'
import { claimBatch, type Lease } from '../src/outbox/claim.ts'
import { startSends } from '../src/outbox/start-send.ts'
import { startBenchCluster } from './cluster.ts'
import { median } from './percentiles.ts'
import { addCounted, statementStats } from './statement-stats.ts'
import { rotated } from './turns.ts'

const rounds = Number(process.argv[2] ?? 10)
const checks = Number(process.argv[3] ?? 200)
const DB = 'outbox_last_check'
const MAILBOX = 'outbox@example.com'

// Round 38's unpaced check (f3dae46's src/outbox/start-send.ts), under a name of its own.
const ROUND_38 = `
  /* prepared outbox_start_sends_unpaused_r38 */
  with ask as (
    select i.id, i.token, p.next_at as paused_until
      from unnest($1::bigint[], $2::uuid[], $3::text[]) as i(id, token, mailbox)
      left join mailer.mailbox_pacing p on p.mailbox = i.mailbox and p.next_at > now()
  )
  select s.id, s.started, s.cancelled, s.expired, s.busy, null::float8 as paused_ms
    from mailer.start_sends_unlocked(array(select id from ask where paused_until is null),
                                     array(select token from ask where paused_until is null)) s
  union all
  select id, false, false, false, false, greatest(1, extract(epoch from paused_until - now()) * 1000)::float8
    from ask where paused_until is not null`

const VARIANTS = ['round 38', 'this checkout'] as const

const cluster = await startBenchCluster()
try {
  await cluster.createDatabase(DB)
  await migrate({ url: cluster.url(DB), log: silentLogger })
  const h = openDb({ name: 'bench', url: cluster.url(DB), log: silentLogger, maxConnections: 1 })
  try {
    const total = (2 * rounds * checks + 4) * VARIANTS.length
    await sql`insert into mailer.email_outbox (message)
              select jsonb_build_object('to', 'a@example.com', 'subject', 's', 'text', 't')
                from generate_series(1, ${total}::int)`.execute(h.db)
    await sql`vacuum (analyze) mailer.email_outbox, mailer.mailbox_pacing`.execute(h.db)
    const pending: Lease[] = []
    async function lease(): Promise<Lease> {
      if (pending.length === 0) {
        const got = await claimBatch(h.db, {
          limit: 100,
          workerId: 'k00',
          leaseSeconds: 600,
          defaultMaxAttempts: 8,
          markStarted: false,
        })
        pending.push(...got.leases)
      }
      return pending.shift()!
    }
    async function check(variant: number) {
      const l = await lease()
      const t0 = performance.now()
      if (variant === 0) await statementText(h.db, ROUND_38, [[l.id], [l.token], [MAILBOX]])
      else await startSends(h.db, [{ id: l.id, token: l.token, mailbox: MAILBOX }])
      return performance.now() - t0
    }
    for (const phase of ['no rate noted', "a rate of 0 noted ('pacing rate' row)"]) {
      if (phase !== 'no rate noted')
        await sql`insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval)
                  values ('pacing rate', now(), interval '0')`.execute(h.db)
      // Prepared and planned on the connection before anything is counted.
      for (let v = 0; v < VARIANTS.length; v++) await check(v)
      await cluster.admin.query('select pg_stat_statements_reset()')
      const trips = VARIANTS.map(() => [] as number[])
      const stats = VARIANTS.map(() => ({ calls: 0, ms: 0, buffers: 0 }))
      for (let r = 0; r < rounds; r++) {
        for (const v of rotated([0, 1], r)) {
          const before = await checkStats(v)
          for (let c = 0; c < checks; c++) trips[v]!.push(await check(v))
          addCounted(stats[v]!, before, await checkStats(v))
        }
      }
      console.log(phase)
      for (const [v, name] of VARIANTS.entries()) {
        const s = stats[v]!
        console.log(
          `  ${name}: ${s.calls} calls; mean execution ${(s.ms / s.calls).toFixed(3)} ms, ${(s.buffers / s.calls).toFixed(1)} shared buffers per call; round trip median ${median(trips[v]!).toFixed(3)} ms`,
        )
      }
    }
  } finally {
    await h.close()
  }

  // Round 38's statement is the one without the rate's read.
  function checkStats(variant: number) {
    return statementStats(cluster.admin, DB, '%mailer.start_sends_%(array(%', {
      like: '%with rate as materialized%',
      matches: variant === 1,
    })
  }
} finally {
  await cluster.stop()
}
