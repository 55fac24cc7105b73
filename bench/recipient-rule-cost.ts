// `bun run bench/recipient-rule-cost.ts [rounds] [rows]`: the backend CPU of mailer.enqueue_email per row with 0168's normalize_recipients against 0163's, taking turns.
//
// One database, normalize_recipients swapped in before each turn: 0163's definition (the rule
// before 0168) and 0168's, twice (their spread is the bench's own: three databases of one schema
// showed one 1.16x another). Each round (default 30, after 3 unmeasured) each takes its turn, the
// first rotating, enqueueing `rows` messages (default 2000) in one statement per shape: `lone`
// ("to": "a@b.c", every field a lone value) and `list` (to, cc and replyTo as lists of a string,
// "Name <address>" and an object; from "Name <address>"). Measured: the session's backend CPU
// (/proc; ticks are 10 ms, so per round of 2000 rows about 5 µs/row) per row; reported: the median
// over rounds per shape and definition, and the medians of the rounds' ratios.
import { migrate } from '../src/db/migrate.ts'
import { migrations } from '../src/db/migrations.ts'
import { type DbHandle, openDb } from '../src/db/open.ts'
import { silentLogger } from '../src/log.ts'
import { startBenchCluster } from './cluster.ts'
import { median } from './percentiles.ts'
import { fmt, ratioSpread } from './report.ts'
import { backendCpuSeconds } from './server-stats.ts'

const rounds = Number(process.argv[2] ?? 30)
const rows = Number(process.argv[3] ?? 2000)
if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(rows) || rows < 1) {
  console.error('usage: bun run bench/recipient-rule-cost.ts [rounds ≥ 1] [rows ≥ 1]')
  process.exit(2)
}
const WARMUP = 3

const shapes = {
  lone: `jsonb_build_object('to', 'rcpt' || g || '@example.com', 'from', 'orders@example.com',
           'replyTo', 'help@example.com', 'subject', 'Order ' || g, 'text', 'Thanks')`,
  list: `jsonb_build_object(
           'to', jsonb_build_array('rcpt' || g || '@example.com', 'Ann <ann@example.com>',
                                   jsonb_build_object('address', 'bob@example.com', 'name', 'Bob')),
           'cc', jsonb_build_array('"Doe, John" <john@example.com>'),
           'replyTo', jsonb_build_array('Help Desk <help@example.com>'),
           'from', 'Orders <orders@example.com>', 'subject', 'Order ' || g, 'text', 'Thanks')`,
} as const
type Shape = keyof typeof shapes

interface Subject {
  name: string
  /** Its normalize_recipients: the migration's text, a create or replace of that function alone. */
  sql: string
  us: Record<Shape, number[]>
}

const text = (v: number) => migrations.find((m) => m.version === v)!.sql
// "0168" twice: the spread of one definition against itself, taking the same turns (A/A).
const subjects: Subject[] = [
  { name: '0163', sql: text(163), us: { lone: [], list: [] } },
  { name: '0168', sql: text(168), us: { lone: [], list: [] } },
  { name: '0168 again', sql: text(168), us: { lone: [], list: [] } },
]
const cluster = await startBenchCluster()
const db = 'recipient_rule'
await cluster.createDatabase(db)
await migrate({ url: cluster.url(db), log: silentLogger })
const h: DbHandle = openDb({ name: db, url: cluster.url(db), log: silentLogger, maxConnections: 1 })
try {
  const pid = (await h.pool.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
  for (let r = 0; r < WARMUP + rounds; r++) {
    const order = subjects.map((_, i) => subjects[(i + r) % subjects.length]!)
    for (const shape of Object.keys(shapes) as Shape[]) {
      for (const s of order) {
        // Its definition in place, compiled by one call, before the measured statement.
        await h.pool.query(s.sql)
        await h.pool.query(
          `select count(mailer.enqueue_email(${shapes[shape]})) from generate_series(-1, -1) g`,
        )
        const c0 = await backendCpuSeconds(pid)
        await h.pool.query(
          `select count(mailer.enqueue_email(${shapes[shape]})) from generate_series($1::int, $2::int) g`,
          [r * rows, r * rows + rows - 1],
        )
        const c1 = await backendCpuSeconds(pid)
        if (r >= WARMUP) s.us[shape].push(((c1 - c0) * 1e6) / rows)
        // Emptied after each turn, so that none works on a larger table.
        await h.pool.query('truncate mailer.email_outbox')
      }
    }
  }
  console.log(
    `\n${rounds} rounds of ${rows} enqueue_email per shape and definition (after ${WARMUP} unmeasured), taking turns in one database\n`,
  )
  console.log(
    '| shape | CPU µs/row 0163 · 0168 · 0168 again | median ratio 0168 / 0163 (p25–p75 of rounds) | again / 0163 | again / 0168 (A/A) |',
  )
  console.log('| --- | --- | --- | --- | --- |')
  const [before, now, again] = subjects as [Subject, Subject, Subject]
  const ratio = (a: Subject, b: Subject, shape: Shape) => ratioSpread(a.us[shape], b.us[shape])
  for (const shape of Object.keys(shapes) as Shape[]) {
    console.log(
      `| ${shape} | ${subjects.map((s) => fmt(median(s.us[shape]), 1)).join(' · ')} | ${ratio(now, before, shape)} | ${ratio(again, before, shape)} | ${ratio(again, now, shape)} |`,
    )
  }
} finally {
  await h.close()
  await cluster.stop()
}
