// `bun run bench/lock-order-cost.ts [batches] [rows] [check]`: what locking in id order costs the heartbeat, start_sends and mark_sent, before against after.
//
// Two databases on one cluster: migrated up to 0020 (start_sends and mark_sent hash-joined to
// their input), with the heartbeat's former statement (joined to its leases in claim order); and
// as now (0021's merge joins, the heartbeat locking first in id order). Batch after batch, taking
// turns: `rows` rows committed and claimed (not started, as for Graph), one heartbeat of all of
// them, their last checks in calls of `check` rows (Graph asks for them a few at a time), then one
// mark_sent of all of them in the order sends finish (shuffled). Per statement: round trip (median
// per call) and the backend's CPU per row (/proc, summed over the batches: ticks are 10 ms).

import { sql } from 'kysely'
import { migrate } from '../src/db/migrate.ts'
import { migrations } from '../src/db/migrations.ts'
import { openDb } from '../src/db/open.ts'
import { silentLogger } from '../src/log.ts'
import { claimBatch, type Lease } from '../src/outbox/claim.ts'
import { extendLeases } from '../src/outbox/heartbeat.ts'
import { markSent } from '../src/outbox/mark-sent.ts'
import { registryBeat } from '../src/outbox/registry-beat.ts'
import { startSends } from '../src/outbox/start-send.ts'
import type { WorkerIdentity } from '../src/outbox/worker-identity.ts'
import { startBenchCluster } from './cluster.ts'
import { median } from './percentiles.ts'
import { backendCpuSeconds } from './server-stats.ts'

const batches = Number(process.argv[2] ?? 60)
const rows = Number(process.argv[3] ?? 500)
const check = Number(process.argv[4] ?? 4)
const WARMUP_BATCHES = 3
const WORKER: WorkerIdentity = { id: 'lock-order-cost', host: 'bench', pid: 1, version: 'bench' }
const MESSAGE = `'{"to":[{"address":"a@example.com"}],"subject":"s","text":"t"}'::jsonb`

const cluster = await startBenchCluster()
type Db = ReturnType<typeof openDb>['db']

/** The heartbeat as released before 0021: joined to its leases in the order they come. */
async function heartbeatBefore(db: Db, leases: readonly Lease[]) {
  await sql`
    with ${registryBeat(WORKER)}
    update mailer.email_outbox o
       set lease_expires_at = now() + make_interval(secs => 60)
      from unnest(${leases.map((l) => l.id)}::bigint[], ${leases.map((l) => l.token)}::uuid[]) as t(id, token)
     where o.id = t.id and o.lease_token = t.token and o.status = 'sending'
    returning o.id`.execute(db)
}

interface Subject {
  name: string
  db: Db
  pid: number
  heartbeat: (db: Db, leases: readonly Lease[]) => Promise<unknown>
}

async function subject(name: string, upTo: number, heartbeat: Subject['heartbeat']) {
  await cluster.createDatabase(name)
  await migrate({
    url: cluster.url(name),
    log: silentLogger,
    migrations: migrations.slice(0, upTo),
  })
  const h = openDb({ name, url: cluster.url(name), log: silentLogger, maxConnections: 1 })
  const db = h.statements.db
  const { rows: r } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(db)
  return { s: { name, db, pid: r[0]!.pid, heartbeat } as Subject, close: () => h.close() }
}

// Found by name: the lead may renumber the migration on merge.
const lockOrder = migrations.findIndex((m) => m.name.endsWith('_hot_path_locks_in_id_order'))
if (lockOrder < 0) throw new Error('the lock-order migration is not in this checkout')
const before = await subject('before_0021', lockOrder, heartbeatBefore)
const after = await subject('after_0021', migrations.length, (db, leases) =>
  extendLeases(db, WORKER, leases, 60),
)
const subjects = [before.s, after.s]

type Stat = 'heartbeat' | 'start_sends' | 'mark_sent'
const STATS: Stat[] = ['heartbeat', 'start_sends', 'mark_sent']
const cost = new Map(
  subjects.map((s) => [s.name, new Map(STATS.map((k) => [k, { ms: [] as number[], cpu: 0 }]))]),
)

async function measured(s: Subject, stat: Stat, on: boolean, run: () => Promise<unknown>) {
  const cpu0 = await backendCpuSeconds(s.pid)
  const t0 = performance.now()
  await run()
  const ms = performance.now() - t0
  const cpu1 = await backendCpuSeconds(s.pid)
  if (!on) return
  const c = cost.get(s.name)!.get(stat)!
  c.ms.push(ms)
  c.cpu += cpu1 - cpu0
}

const shuffled = <T>(xs: readonly T[]) => {
  const a = [...xs]
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[a[i], a[j]] = [a[j]!, a[i]!]
  }
  return a
}

for (let b = 0; b < WARMUP_BATCHES + batches; b++) {
  const on = b >= WARMUP_BATCHES
  // Turns rotate, so neither side always runs right after the other's writes.
  for (const s of b % 2 === 0 ? subjects : [...subjects].reverse()) {
    await sql`insert into mailer.email_outbox (message) select ${sql.raw(MESSAGE)} from generate_series(1, ${rows})`.execute(
      s.db,
    )
    const { leases } = await claimBatch(s.db, {
      limit: rows,
      workerId: WORKER.id,
      leaseSeconds: 60,
      defaultMaxAttempts: 5,
    })
    if (leases.length !== rows) throw new Error(`${s.name}: claimed ${leases.length} of ${rows}`)
    await measured(s, 'heartbeat', on, () => s.heartbeat(s.db, leases))
    const order = shuffled(leases)
    for (let i = 0; i < order.length; i += check) {
      const part = order.slice(i, i + check)
      await measured(s, 'start_sends', on, async () => {
        const r = await startSends(s.db, part)
        if (r.started.size !== part.length) throw new Error(`${s.name}: a last check refused`)
      })
    }
    await measured(s, 'mark_sent', on, async () => {
      const { sent: done } = await markSent(
        s.db,
        shuffled(leases).map((l) => ({
          id: l.id,
          token: l.token,
          settlement: { kind: 'sent' as const },
          startedAt: new Date(),
        })),
        WORKER.id,
      )
      if (done.size !== rows) throw new Error(`${s.name}: settled ${done.size} of ${rows}`)
    })
  }
}

const n = batches * rows
console.log(
  `${batches} batches of ${rows} rows per database (after ${WARMUP_BATCHES} unmeasured), taking turns; last checks ${check} rows per call`,
)
console.table(
  subjects.flatMap((s) =>
    STATS.map((k) => {
      const c = cost.get(s.name)!.get(k)!
      return {
        database: s.name,
        statement: k,
        calls: c.ms.length,
        'median ms/call': median(c.ms).toFixed(3),
        'CPU µs/row': ((c.cpu * 1e6) / n).toFixed(2),
      }
    }),
  ),
)
await before.close()
await after.close()
await cluster.stop()
