// `bun run bench/live-stats-cost.ts [reps] [scheduled]`: what the live statement of every /metrics scrape (liveStats) costs a production-like outbox, as released before round 46 and now.
//
// The outbox keeps 100,000 sent rows (1 KB bodies, frozen and analyzed as autovacuum leaves them)
// and 4,000 pending: 1,700 due, 1,000 sent back to a reserved pacing turn (mailbox_paced, due in
// the next half hour), 500 of 5 paused mailboxes moved to their pause's end, 300 of MAIL_FROM (a
// live worker's, paused by a 503 for 10 minutes) given back to its pause's end plus a few
// milliseconds (100 that met the 503, ServiceUnavailable; 200 the gate turned away,
// mailbox_paused), `scheduled` (default 500) scheduled by the caller a day ahead; 20 sending.
// mailer.mailbox_pacing holds 200 mailboxes as pacing leaves them (a turn and a horizon of reserved
// turns each), 5 of them paused by a throttle, 2 more throttled within a turn, and MAIL_FROM paused.
// The two statements take turns `reps` times (default 21), through one connection whose every plan
// comes back (auto_explain: analyze, buffers, no per-node timing); it prints each one's median
// duration and shared buffers (hit + read), and the last plans.
import { sql } from 'kysely'
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import { silentLogger } from '../src/log.ts'
import { liveStats } from '../src/outbox/stats.ts'
import { startBenchCluster } from './cluster.ts'
import { costsTakingTurns, openExplainedDb } from './explained-db.ts'
import { fillKept } from './kept-rows.ts'
import { median } from './percentiles.ts'
import { openProbe } from './systems/probe.ts'

const reps = Number(process.argv[2] ?? 21)
const scheduled = Number(process.argv[3] ?? 500)
const DB = 'outbox_live_stats'

// liveStats as released before round 46 (c5ef758): the rows in play and the NOTIFY queue's fill.
const BEFORE = sql`
    select
      (select count(*) from mailer.email_outbox
        where status = 'pending' and (${null}::text is null or tenant = ${null})) as pending,
      (select count(*) from mailer.email_outbox
        where status = 'sending' and (${null}::text is null or tenant = ${null})) as sending,
      (select extract(epoch from now() - min(send_at))::float8 from mailer.email_outbox
        where status = 'pending' and send_at <= now()
          and (${null}::text is null or tenant = ${null})) as oldest,
      pg_notification_queue_usage()::float8 as usage`

const message = (from: string) =>
  `jsonb_build_object('to', 'a@example.com', 'subject', 's', 'text', 't'${from})`

const cluster = await startBenchCluster()
try {
  await cluster.createDatabase(DB)
  await migrate({ url: cluster.url(DB), log: silentLogger })
  const probe = await openProbe(cluster.probeUrl(DB))
  await fillKept(probe, { kept: 100_000, textBytes: 1_000 })
  await probe.close()
  const setup = new pg.Client({ connectionString: cluster.url(DB) })
  await setup.connect()
  await setup.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval)
     select k, now() + interval '2 seconds', interval '2 seconds'
       from generate_series(1, 200) g, lateral (values ('m' || g || '@example.com'), ('queue m' || g || '@example.com')) v(k)`,
  )
  await setup.query(
    `update mailer.mailbox_pacing
        set next_at = now() + interval '10 minutes', turn_interval = interval '0',
            throttled_until = now() + interval '10 minutes'
      where mailbox in ('m1@example.com', 'm2@example.com', 'm3@example.com', 'm4@example.com', 'm5@example.com')`,
  )
  await setup.query(
    `update mailer.mailbox_pacing set next_at = now() + interval '20 minutes', turn_interval = interval '20 minutes',
            throttled_until = now() + interval '10 minutes'
      where mailbox in ('m6@example.com', 'm7@example.com')`,
  )
  await setup.query(
    `select mailer.enqueue_email(${message('')}, '{}'::jsonb) from generate_series(1, 3000)`,
  )
  await setup.query(
    `select mailer.enqueue_email(${message(", 'from', 'm' || (g % 5 + 1) || '@example.com'")}, '{}'::jsonb)
       from generate_series(1, 500) g`,
  )
  await setup.query(
    `select mailer.enqueue_email(${message('')}, jsonb_build_object('sendAt', now() + interval '1 day'))
       from generate_series(1, $1::int)`,
    [scheduled],
  )
  await setup.query(
    `update mailer.email_outbox set send_at = now() + (1 + id % 1800) * interval '1 second', last_error_code = 'mailbox_paced'
      where id in (select id from mailer.email_outbox where status = 'pending' and sender_key is null
                    and send_at <= now() order by id limit 1000)`,
  )
  // MAIL_FROM paused by a 503 (its Retry-After 600: a pause the runs do not outlast) and noted by a
  // live worker (sql/0079); the rows that met it or that the gate turned away, given back to its
  // end as their settlements' now() leaves them.
  await setup.query(
    `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval, throttled_until, pause_reason, pause_reason_ends)
     values ('outbox@example.com', now() + interval '10 minutes', interval '0', now() + interval '10 minutes',
             'throttle', now() + interval '10 minutes')`,
  )
  await setup.query(
    `insert into mailer.workers (id, host, pid, version, probe_mailbox, lease_seconds)
     values ('w', 'h', 1, 'v', 'outbox@example.com', 3600)`,
  )
  await setup.query(
    `update mailer.email_outbox
        set send_at = now() + interval '10 minutes' + (id % 50) * interval '1 millisecond',
            last_error_code = case when id % 3 = 0 then 'ServiceUnavailable' else 'mailbox_paused' end
      where id in (select id from mailer.email_outbox where status = 'pending' and sender_key is null
                    and send_at <= now() order by id limit 300)`,
  )
  // Their mailbox's horizon of reserved turns reaches past the last of them, as reservePacing leaves it.
  await setup.query(
    `update mailer.mailbox_pacing set next_at = now() + interval '1802 seconds' where mailbox = 'queue m8@example.com'`,
  )
  for (let m = 1; m <= 5; m++)
    await setup.query('select mailer.defer_paused_rows($1)', [`m${m}@example.com`])
  await setup.query(
    `insert into mailer.email_outbox (message, status, attempts, lease_owner, lease_token, lease_expires_at)
     select ${message('')}, 'sending', 1, 'w', gen_random_uuid(), now() + interval '1 hour'
       from generate_series(1, 20)`,
  )
  await setup.query('vacuum (analyze) mailer.email_outbox, mailer.mailbox_pacing')
  const shape = await setup.query(
    `select status, last_error_code as code, send_at > now() as later, count(*)::int as n
       from mailer.email_outbox where status in ('pending', 'sending') group by 1, 2, 3 order by 1, 2, 3`,
  )
  console.log('rows in play:', JSON.stringify(shape.rows))
  await setup.end()

  const explained = await openExplainedDb(cluster.url(DB), { timing: false })
  const { db } = explained
  const runs = {
    before: async () => void (await BEFORE.execute(db)),
    now: async () => void (await liveStats(db, null)),
  }
  const costs = await costsTakingTurns(explained, runs, reps)
  const now = (await liveStats(db, null)) as unknown as Record<string, unknown>
  console.log('now reads:', JSON.stringify(now))
  for (const [name, c] of Object.entries(costs))
    console.log(
      `${name}: median ${median(c.ms).toFixed(3)} ms, ${median(c.buffers)} shared buffers; ${reps} runs, taking turns`,
    )
  for (const [name, c] of Object.entries(costs)) console.log(`\n${name}, last plan:\n${c.plan}`)
  await db.destroy()
} finally {
  await cluster.stop()
}
