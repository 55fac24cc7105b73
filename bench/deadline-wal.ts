// `bun run bench/deadline-wal.ts [reps] [rows]`: WAL per row of a Graph worker's drain with the send's deadline noted at its last check (sql/0078) and without.
//
// A Graph worker claims its rows unstarted, records each send's start at its last check in the
// send slot, and settles the sent ones (mark_sent_unlocked). Round 40 (migration 0078) has that
// check write send_deadline_at beside send_started_at (8 bytes, 8-aligned, at the row's end) in the
// same UPDATE; the settlement of a sent row (mark_sent_unlocked, replaced by 0078) clears it with
// the start, so only the started version carries it (kept on sent rows, as 0078 was first written,
// it cost 851 B against 819: twice this). This drains `rows` rows on one connection
// with the engine's own calls, 50-row claims, each claim's rows checked 10 at a time, then settled
// sent at once, three variants taking turns rep by rep in a rotating order: `noted` (this
// checkout's startSends with a 30 s timeout), `unnoted` (the same call with no timeout: the column
// stays NULL) and `r39` (round 39's statement, mailer.start_sends_unlocked, which older binaries
// still call). Reported per variant: WAL per row (insert commit to the last settlement), median.
import { migrate } from '../src/db/migrate.ts'
import { openDb } from '../src/db/open.ts'
import { statementText } from '../src/db/single-statement-db.ts'
import { silentLogger } from '../src/log.ts'
import { claimBatch, type Lease } from '../src/outbox/claim.ts'
import { startSends } from '../src/outbox/start-send.ts'
import { startBenchCluster } from './cluster.ts'
import { settleAllSent } from './engine-batch.ts'
import { median } from './percentiles.ts'
import { lsnBytes } from './server-stats.ts'
import { outboxQueue } from './systems/outbox-engine.ts'
import { openProbe } from './systems/probe.ts'
import { rotated } from './turns.ts'

const reps = Number(process.argv[2] ?? 5)
const rows = Number(process.argv[3] ?? 5_000)
const WORKER = 'e286de4f711986:12345:1a2b3c'
const KEY = 'k7q'
const VARIANTS = ['noted', 'unnoted', 'r39'] as const

const R39 = `
  /* prepared outbox_start_sends_r39 */
  select id, started, cancelled, expired, busy from mailer.start_sends_unlocked($1::bigint[], $2::uuid[])`

const cluster = await startBenchCluster()
const wal: Record<string, number[]> = { noted: [], unnoted: [], r39: [] }
try {
  const name = 'deadline_wal'
  await cluster.createDatabase(name)
  await migrate({ url: cluster.url(name), log: silentLogger })
  const probe = await openProbe(cluster.probeUrl(name))
  const db = openDb({ name, url: cluster.url(name), log: silentLogger, maxConnections: 1 })
  const queue = outboxQueue(probe)
  const d = db.statements.db
  const start = async (variant: (typeof VARIANTS)[number], leases: Lease[]) => {
    if (variant === 'r39')
      await statementText(d, R39, [leases.map((l) => l.id), leases.map((l) => l.token)])
    else await startSends(d, leases, variant === 'noted' ? 30 : null)
  }
  try {
    for (let rep = 0; rep < reps; rep++) {
      for (const variant of rotated(VARIANTS, rep)) {
        await queue.reset()
        const from = await queue.insertBulk(rows)
        for (let done = 0; done < rows; ) {
          const { leases } = await claimBatch(d, {
            limit: 50,
            workerId: KEY,
            leaseSeconds: 60,
            defaultMaxAttempts: 5,
          })
          if (leases.length === 0) throw new Error(`${done} of ${rows} rows claimed`)
          for (let i = 0; i < leases.length; i += 10) await start(variant, leases.slice(i, i + 10))
          await settleAllSent(d, leases, WORKER)
          done += leases.length
        }
        const to = (
          await probe.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text as lsn')
        )[0]!.lsn
        wal[variant]!.push(Math.round(Number(lsnBytes(to) - lsnBytes(from)) / rows))
        console.error(JSON.stringify({ rep: rep + 1, variant, 'WAL B/row': wal[variant]!.at(-1) }))
      }
    }
  } finally {
    await db.close()
    await probe.close()
  }
} finally {
  await cluster.stop()
}
console.log(`${rows} rows per drain, 50-row claims, last checks of 10, ${reps} reps per variant`)
console.table(
  VARIANTS.map((v) => ({
    variant: v,
    'WAL B/row (median)': median(wal[v]!),
    all: wal[v]!.join(' '),
  })),
)
