// `bun run bench/refused-pause-rows.ts [rows] [pending] [reps]`: what counting the pending rows that send from a refused mailbox (refused-pause-rows.ts) costs liveStats (/v1/stats, status, every /metrics scrape) on a big outbox.
//
// Fills one outbox a year in (bench/year-outbox-fill.ts: default 2,000,000 rows, the newest
// `pending` pending, default 200,000), keys a quarter of the pending rows desk@example.com and a
// quarter other@example.com (the rest name no sender: MAIL_FROM's), vacuumed and analyzed. Then,
// for each shape of the pauses (none; desk throttled; desk refused; MAIL_FROM refused, a live
// worker's registry entry noting it; both refused), `reps` times (default 9) taking turns: liveStats
// and the count alone, through one connection whose every plan comes back (auto_explain: analyze,
// buffers, no per-node timing). Prints each one's median ms and shared buffers, the count read,
// and the last plan of the count alone per shape. With no pause a refusal, the count is never run
// (0 buffers): liveStats reads what it read before it.
import { sql } from 'kysely'
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import { silentLogger } from '../src/log.ts'
import { PAUSED_MAILBOXES_NOW } from '../src/outbox/paused-now.ts'
import { refusedPausePending } from '../src/outbox/refused-pause-rows.ts'
import { liveStats } from '../src/outbox/stats.ts'
import { startBenchCluster } from './cluster.ts'
import { costsTakingTurns, openExplainedDb } from './explained-db.ts'
import { median } from './percentiles.ts'
import { fillYearOutbox } from './year-outbox-fill.ts'

const rows = Number(process.argv[2] ?? 2_000_000)
const pending = Number(process.argv[3] ?? 200_000)
const reps = Number(process.argv[4] ?? 9)
const DB = 'refused_pause_rows'

// The count alone: liveStats's expression, every pending row's count asked only when it is used
// (liveStats reads that count anyway).
const ALONE = sql<{ n: string }>`
    with paused as materialized (${PAUSED_MAILBOXES_NOW})
    select ${refusedPausePending('paused', sql`(select count(*) from mailer.email_outbox where status = 'pending')`)} as n`

const pause = (mailbox: string, cause: 'throttle' | 'refused') =>
  `insert into mailer.mailbox_pacing (mailbox, next_at, turn_interval, throttled_until, pause_reason)
   values ('${mailbox}', now() + interval '1 hour', interval '0', now() + interval '1 hour', '${cause}')`
const LIVE_MAIL_FROM = `insert into mailer.workers (id, host, pid, version, probe_mailbox, lease_seconds)
   values ('bench:1', 'h', 1, 'v', 'mail@example.com', 3600)`
const SHAPES: [string, string[]][] = [
  ['no pause', []],
  ['desk throttled', [pause('desk@example.com', 'throttle')]],
  ['desk refused', [pause('desk@example.com', 'refused')]],
  ['MAIL_FROM refused', [pause('mail@example.com', 'refused'), LIVE_MAIL_FROM]],
  [
    'both refused',
    [pause('desk@example.com', 'refused'), pause('mail@example.com', 'refused'), LIVE_MAIL_FROM],
  ],
]

const cluster = await startBenchCluster()
try {
  await cluster.createDatabase(DB)
  const url = cluster.url(DB)
  await migrate({ url, log: silentLogger })
  const setup = new pg.Client({ connectionString: url })
  await setup.connect()
  const t0 = performance.now()
  await fillYearOutbox(setup, rows, pending)
  await setup.query(
    `update mailer.email_outbox
        set sender_key = case id % 4 when 1 then 'desk@example.com' when 2 then 'other@example.com' end
      where status = 'pending' and id % 4 in (1, 2)`,
  )
  await setup.query('vacuum (analyze) mailer.email_outbox')
  console.log(
    `${rows} rows, ${pending} pending (a quarter desk's, a quarter other's, half MAIL_FROM's), filled in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  )
  const explained = await openExplainedDb(url, { timing: false })
  const { db } = explained
  const runs = {
    liveStats: async () => void (await liveStats(db, null)),
    'count alone': async () => void (await ALONE.execute(db)),
  }
  for (const [shape, statements] of SHAPES) {
    await setup.query('delete from mailer.mailbox_pacing; delete from mailer.workers')
    for (const s of statements) await setup.query(s)
    const costs = await costsTakingTurns(explained, runs, reps)
    const read = await liveStats(db, null)
    console.log(
      `\n${shape}: refusedMailboxPending ${read.refusedMailboxPending}, pausedMailboxesRefused ${read.pausedMailboxesRefused}`,
    )
    for (const [name, c] of Object.entries(costs))
      console.log(
        `  ${name.padEnd(12)} median ${median(c.ms).toFixed(1).padStart(7)} ms, ${median(c.buffers)} shared buffers (${reps} runs, taking turns)`,
      )
    console.log(`  count alone, last plan:\n${costs['count alone']?.plan}`)
  }
  await db.destroy()
  await setup.end()
} finally {
  await cluster.stop()
}
