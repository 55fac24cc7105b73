// `bun run bench/attempt-kind-migration.ts [rows]`: migration 0189 (email_attempts.kind) on an outbox a year in, and how long it held up the history's writers.
//
// Fills one outbox to 0188 (bench/year-outbox-fill.ts: default 2,000,000 rows and their history),
// then runs `migrate` for 0189 while another session inserts one history entry at a time, as
// settlements do, and reports the migration's wall time, the table's size and the writer's
// slowest insert during it (a lock the migration held would show there: ACCESS EXCLUSIVE blocks
// every insert; VALIDATE's SHARE UPDATE EXCLUSIVE none). Wall times on a shared machine.
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import { migrations } from '../src/db/migrations.ts'
import { silentLogger } from '../src/log.ts'
import { startBenchCluster } from './cluster.ts'
import { loadAverage } from './load-average.ts'
import { fillYearOutbox } from './year-outbox-fill.ts'

const rows = Number(process.argv[2] ?? 2_000_000)
const VERSION = 189

console.log(`before: ${loadAverage()}`)
const cluster = await startBenchCluster()
try {
  const url = cluster.url('kind_migration')
  await cluster.createDatabase('kind_migration')
  await migrate({
    url,
    log: silentLogger,
    migrations: migrations.filter((m) => m.version < VERSION),
  })
  const client = new pg.Client(url)
  await client.connect()
  const t0 = performance.now()
  await fillYearOutbox(client, rows, 20_000)
  const { rows: size } = await client.query(
    `select count(*)::int as entries, pg_size_pretty(pg_relation_size('mailer.email_attempts')) as heap
       from mailer.email_attempts`,
  )
  console.log(
    `${rows} rows, ${size[0].entries} history entries (${size[0].heap}), filled in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
  )
  // The writer: one entry per statement, its own transaction, as a settlement's.
  let writing = true
  const waits: number[] = []
  const writer = (async () => {
    while (writing) {
      const s = performance.now()
      await client.query(
        `insert into mailer.email_attempts (outbox_id, attempt, worker_id, outcome, error_code, error)
         values (1, 9, 'bench', 'retry', 'timeout', 'Graph request exceeded its deadline')`,
      )
      waits.push(performance.now() - s)
    }
  })()
  const m0 = performance.now()
  const { applied } = await migrate({ url, log: silentLogger })
  const ms = performance.now() - m0
  writing = false
  await writer
  const { rows: after } = await client.query(
    `select pg_size_pretty(pg_relation_size('mailer.email_attempts')) as heap,
            (select convalidated from pg_constraint where conname = 'email_attempts_kind_check') as validated`,
  )
  await client.end()
  waits.sort((a, b) => a - b)
  console.log(
    `applied ${applied.join(', ')} in ${ms.toFixed(0)} ms; heap ${after[0].heap} after (no rewrite), check validated: ${after[0].validated}`,
  )
  console.log(
    `writer during it: ${waits.length} inserts, median ${waits[Math.floor(waits.length / 2)]?.toFixed(2)} ms, slowest ${waits.at(-1)?.toFixed(1)} ms`,
  )
} finally {
  await cluster.stop()
}
console.log(`after: ${loadAverage()}`)
