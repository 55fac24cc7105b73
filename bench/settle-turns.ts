// `bun run bench/settle-turns.ts [rounds] [rows]`: what settleLeases (a batch of retries, throttles or failures) costs Postgres, this checkout's against another's, taking turns.
//
// The drain's rows end sent (markSent); settleLeases records everything else, a whole claim's
// batch at a time when a provider outage or throttle meets it. SETTLE_FROM=<another checkout>
// (e.g. a worktree of the previous commit) runs that checkout's settleLeases on the same database
// (the statement is client text: the schema is this checkout's migrations), the two taking turns
// batch by batch in an order that swaps each round. Each batch: `rows` rows inserted, claimed
// without the send's start mark (as Graph's sends are), then settled with one kind; reported per
// kind: the backend's CPU per row (/proc, summed over the rounds: ticks are 10 ms), the
// statement's round trip (median), shared buffers (auto_explain is not used: the counts come from
// pg_stat_statements), and the ratio this ÷ other.
import { join, resolve } from 'node:path'
import { Kysely, PostgresDialect } from 'kysely'
import pg from 'pg'
import { migrate } from '../src/db/migrate.ts'
import type { Database } from '../src/db/schema.ts'
import { silentLogger } from '../src/log.ts'
import { claimBatch } from '../src/outbox/claim.ts'
import type { settleLeases as SettleLeases } from '../src/outbox/settle.ts'
import type { Settlement } from '../src/outbox/settle-item.ts'
import { startBenchCluster } from './cluster.ts'
import { median } from './percentiles.ts'
import { backendCpuSeconds } from './server-stats.ts'
import { statementStats } from './statement-stats.ts'
import { OUTBOX_MESSAGE } from './systems/outbox-engine.ts'

const rounds = Number(process.argv[2] ?? 30)
const rows = Number(process.argv[3] ?? 500)
const from = process.env.SETTLE_FROM

const KINDS: Record<string, Settlement> = {
  retry: {
    kind: 'retry',
    code: 'graph_503',
    message: 'Service Unavailable',
    delayMs: 30_000,
    throttled: false,
    ambiguous: false,
  },
  throttled: {
    kind: 'retry',
    code: 'graph_429',
    message: 'Too Many Requests',
    delayMs: 30_000,
    throttled: true,
    ambiguous: false,
  },
  failed: { kind: 'failed', code: 'graph_400', message: 'Bad Request' },
  // A gateway timeout with lookups on: uncounted, its send may have gone, to be looked up first
  // (the verdict's uncommon branches, and the throttle run's start read from the history).
  interrupted: {
    kind: 'retry',
    code: 'http_504',
    message: 'Gateway Timeout',
    delayMs: 30_000,
    throttled: true,
    ambiguous: true,
    lookUpFirst: true,
  },
}

type Settle = typeof SettleLeases
const variants: { name: string; settle: Settle }[] = [
  { name: 'this', settle: (await import('../src/outbox/settle.ts')).settleLeases },
]
if (from)
  variants.push({
    name: 'other',
    settle: (await import(join(resolve(from), 'src/outbox/settle.ts'))).settleLeases as Settle,
  })

const cluster = await startBenchCluster()
await cluster.createDatabase('settle')
await migrate({ url: cluster.url('settle'), log: silentLogger })
const pool = new pg.Pool({ connectionString: cluster.url('settle'), max: 1 })
const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
const client = await pool.connect()
const pid = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
client.release()

const cpu = new Map<string, number>()
const buffers = new Map<string, number>()
// settleLeases's text (either checkout's), by the verdict function it inlines.
const settleBuffers = async () =>
  (await statementStats(cluster.admin, 'settle', '%mailer.settle_verdict%')).buffers
const trips = new Map<string, number[]>()
async function batch(v: (typeof variants)[number], kind: string): Promise<void> {
  await pool.query(
    `insert into mailer.email_outbox (message) select ${OUTBOX_MESSAGE} from generate_series(1, $1)`,
    [rows],
  )
  const { leases } = await claimBatch(db, {
    limit: rows,
    workerId: 'bench',
    leaseSeconds: 60,
    defaultMaxAttempts: 5,
  })
  const items = leases.map((l) => ({
    id: l.id,
    token: l.token,
    settlement: KINDS[kind]!,
    startedAt: new Date(),
  }))
  const key = `${kind} ${v.name}`
  const buffersBefore = await settleBuffers()
  const before = await backendCpuSeconds(pid)
  const t0 = performance.now()
  const settled = await v.settle(db, items, {
    workerId: 'bench',
    defaultMaxAttempts: 5,
    throttleDeadlineSeconds: 86_400,
  })
  trips.set(key, [...(trips.get(key) ?? []), performance.now() - t0])
  cpu.set(key, (cpu.get(key) ?? 0) + (await backendCpuSeconds(pid)) - before)
  buffers.set(key, (buffers.get(key) ?? 0) + (await settleBuffers()) - buffersBefore)
  if (settled.length !== rows) throw new Error(`${key}: settled ${settled.length} of ${rows}`)
  await pool.query('delete from mailer.email_attempts')
  await pool.query('delete from mailer.email_outbox')
}

// One unmeasured batch each first: the connection's caches and the plans.
for (const v of variants) for (const kind of Object.keys(KINDS)) await batch(v, kind)
cpu.clear()
trips.clear()
buffers.clear()
for (let r = 0; r < rounds; r++) {
  const order = r % 2 === 0 ? variants : [...variants].reverse()
  for (const kind of Object.keys(KINDS)) for (const v of order) await batch(v, kind)
}

for (const kind of Object.keys(KINDS)) {
  const line = variants.map((v) => {
    const key = `${kind} ${v.name}`
    const us = ((cpu.get(key) ?? 0) / (rounds * rows)) * 1e6
    const b = (buffers.get(key) ?? 0) / (rounds * rows)
    return `${v.name} ${us.toFixed(2)} µs/row CPU, ${b.toFixed(2)} buffers/row, trip median ${median(trips.get(key) ?? []).toFixed(2)} ms`
  })
  const of = (m: Map<string, number>) =>
    (m.get(`${kind} this`) ?? 0) / (m.get(`${kind} other`) ?? 1)
  const ratio =
    variants.length === 2
      ? ` (this ÷ other: CPU ${of(cpu).toFixed(3)}, buffers ${of(buffers).toFixed(3)})`
      : ''
  console.log(`${kind}: ${line.join('; ')}${ratio}`)
}
await db.destroy()
await cluster.stop()
