// `bun run bench/status-reads.ts [kept] [failedEvery] [reps]`: how long `outbox-mailer status` takes to read one database that keeps its history.
//
// Fills one outbox with `kept` finished rows (default 1,000,000, 100-digit text bodies; one in
// `failedEvery` failed, default 100: 10,000 failed rows, the one read whose cost grows with them),
// frozen and analyzed as autovacuum leaves old rows, then 1,000 due pending rows. Then reads the
// database as the command does (readDatabaseStatus: schema, counts, workers, pauses, failures, each
// in its own READ ONLY transaction) `reps` times (default 5), and, taking turns with it, each
// section's statements alone on a connection already used (the failures both capped at the newest
// 10,000 failed rows, as status reads them, and over every failed row kept). Wall-clock medians on this machine (compare within one run only).
import { sql } from 'kysely'
import { migrate } from '../src/db/migrate.ts'
import { openDb } from '../src/db/open.ts'
import { silentLogger } from '../src/log.ts'
import { mailboxPauses } from '../src/outbox/mailbox-pauses.ts'
import { recentFailures } from '../src/outbox/recent-failures.ts'
import { outboxStats } from '../src/outbox/stats.ts'
import { workerPresence } from '../src/outbox/worker-presence.ts'
import { readDatabaseStatus } from '../src/status/database-status.ts'
import { startBenchCluster } from './cluster.ts'
import { fillKept } from './kept-rows.ts'
import { median } from './percentiles.ts'
import { fmt } from './report.ts'
import { openProbe } from './systems/probe.ts'

const [kept, failedEvery, reps] = [1_000_000, 100, 5].map((d, i) => {
  const arg = process.argv[2 + i]
  const n = arg === undefined ? d : Number(arg)
  if (!Number.isInteger(n) || n < 1) {
    console.error('usage: bun run bench/status-reads.ts [kept ≥ 1] [failedEvery ≥ 1] [reps ≥ 1]')
    process.exit(2)
  }
  return n
}) as [number, number, number]

const DB = 'outbox_status'
const cluster = await startBenchCluster()
try {
  await cluster.createDatabase(DB)
  await migrate({ url: cluster.url(DB), log: silentLogger })
  const probe = await openProbe(cluster.probeUrl(DB))
  const fillS = await fillKept(probe, { kept, textBytes: 100, failedEvery })
  await probe.query(
    `insert into mailer.email_outbox (message)
     select jsonb_build_object('to', 'a@example.com', 'subject', 'a backlog', 'text', 'x')
       from generate_series(1, 1000)`,
  )
  await probe.query('vacuum (analyze) mailer.email_outbox')
  await probe.close()
  console.log(
    `\n${fmt(kept)} finished rows kept (${fmt(Math.floor(kept / failedEvery))} failed), 1,000 pending, filled in ${fmt(fillS)} s`,
  )
  const d = { name: DB, url: cluster.url(DB), listenUrl: cluster.url(DB) }
  const h = openDb({ name: DB, url: d.url, log: silentLogger, maxConnections: 1 })
  const sections = {
    counts: (trx: Parameters<typeof outboxStats>[0]) => outboxStats(trx, null),
    workers: (trx: Parameters<typeof outboxStats>[0]) =>
      workerPresence(trx, { liveSeconds: 120, overdueSeconds: 60 }),
    pauses: (trx: Parameters<typeof outboxStats>[0]) =>
      mailboxPauses(trx, { pacingIntervalMs: 2000 }),
    // A 48 h window: every failed row (finished a day ago) is in it.
    failures: (trx: Parameters<typeof outboxStats>[0]) =>
      recentFailures(trx, { hours: 48, limit: 5, scanLimit: 10_000 }),
    // As first written: every failed row kept looked at.
    'failures, all kept': (trx: Parameters<typeof outboxStats>[0]) =>
      recentFailures(trx, { hours: 48, limit: 5, scanLimit: 2_000_000_000 }),
  }
  const times = new Map<string, number[]>([['whole', []]])
  for (let rep = 0; rep < reps; rep++) {
    const t0 = performance.now()
    const r = await readDatabaseStatus(d, {
      timeoutMs: 30_000,
      leaseSeconds: 60,
      mailboxRatePerMinute: 30,
    })
    times.get('whole')!.push(performance.now() - t0)
    if (!r.reachable || r.unread.length > 0) throw new Error(JSON.stringify(r))
    for (const [name, read] of Object.entries(sections)) {
      await h.db
        .transaction()
        .setAccessMode('read only')
        .execute(async (trx) => {
          await sql`select 1`.execute(trx)
          const t = performance.now()
          await read(trx)
          times.set(name, [...(times.get(name) ?? []), performance.now() - t])
        })
    }
  }
  await h.close()
  for (const [name, ms] of times) {
    console.log(
      `${name === 'whole' ? 'status read of one database (connect included)' : `  ${name}`}: median ${fmt(median(ms), 1)} ms (${ms.map((m) => fmt(m, 0)).join(', ')})`,
    )
  }
} finally {
  await cluster.stop()
}
