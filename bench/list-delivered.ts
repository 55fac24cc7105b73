// `bun run bench/list-delivered.ts [rows]`: a list page filtered by mayHaveBeenDelivered, its history probed row by row against the planner's hashed read, and a retry by lastErrorCode's count and batch against their former lookups, taking turns.
//
// `rows` outbox rows (default 100,000; the list's numbers in BENCHMARKS.md are at 1,000,000) as
// bench/delivered-rows.ts fills them. Pages of 50: for a status, the page's shape (its failed run,
// failed-walk.ts) with the criterion as the planner picks it (`planned`, what the list ran before
// round 58) and fenced (`rowByRow`, the list's now), then the API's page (listOutbox) alone; without
// a status, listOutbox alone (a span, span-page.ts). A retry by code: the count (countRequeueable)
// and a batch of 1,000 (lowestFinishedWithCode) against their statements before round 58 (`in
// (select id from coded)`; a lateral by `id = coded.id` alone). Each pair takes turns, 9 measured
// after one unmeasured: the plans' shared buffers (the same each run) and the median duration,
// through auto_explain with per-node timing off. Each pair must give the same rows.
import { type ExpressionBuilder, sql } from 'kysely'
import type { Database } from '../src/db/schema.ts'
import { countRequeueable } from '../src/outbox/bulk-requeue.ts'
import { lowestFinishedWithCode } from '../src/outbox/candidate-ids.ts'
import { failedRun } from '../src/outbox/failed-walk.ts'
import { listOutbox } from '../src/outbox/inspect.ts'
import { summarySelection } from '../src/outbox/lease-owner-name.ts'
import { matchOutbox, type OutboxFilter } from '../src/outbox/outbox-filter.ts'
import { requeueable } from '../src/outbox/requeue.ts'
import { startBenchTestDb } from './bench-test-db.ts'
import { fillDeliveredRows } from './delivered-rows.ts'
import { openExplainedDb, planCost } from './explained-db.ts'
import { median } from './percentiles.ts'

const rows = Number(process.argv[2] ?? 100_000)
if (!Number.isInteger(rows) || rows < 100) {
  console.error('usage: bun run bench/list-delivered.ts [rows ≥ 100]')
  process.exit(2)
}

const b = await startBenchTestDb('list_delivered')
await fillDeliveredRows(b.probePool, rows)
const e = await openExplainedDb(b.t.url, { timing: false })
type EB = ExpressionBuilder<Database, 'mailer.email_outbox'>
const LIMIT = 50

/** A first page newest first of `f` (a failed or cancelled status), as listStatement shapes it, with the criterion's probe `probe`. */
async function pageOf(f: OutboxFilter, probe: 'planned' | 'rowByRow') {
  const run = failedRun(e.db, f, null, (eb: EB) => eb.and([]), LIMIT + 1, 'desc')
  const page = e.db
    .selectFrom('mailer.email_outbox')
    .select(summarySelection('mailer.email_outbox'))
    .where((eb) => eb.and([matchOutbox(eb, f, null, probe), run.within(eb)]))
    .orderBy('id', 'desc')
    .limit(LIMIT + 1)
  const { rows } = await sql<{ id: string }>`with ${run.cte} ${page}`.execute(e.db)
  return rows.map((r) => String(r.id)).join()
}

/** The count by code before round 58: each id of `coded` looked up by `id in (select id from coded)`. */
async function countBefore(code: string) {
  const { rows } = await sql<{ n: string }>`with coded as materialized (
      select id from (select id from mailer.email_outbox where status = 'failed' and last_error_code = ${code} order by id) f
      union all
      select id from (select id from mailer.email_outbox where status = 'cancelled' and last_error_code = ${code} order by id) c
      order by id)
    select count(*) as n from mailer.email_outbox
     where id in (select id from coded) and last_error_code = ${code}
       and status in ('failed', 'cancelled') and (expires_at is null or expires_at > now())`.execute(
    e.db,
  )
  return Number(rows[0]!.n)
}

/** A batch by code before round 58: each id of `coded` looked up by `id = coded.id` alone. */
async function batchBefore(code: string, limit: number) {
  const { rows } = await sql<{ id: string }>`with coded as materialized (
      select id from (select id from mailer.email_outbox where status = 'failed' and last_error_code = ${code} order by id) f
      union all
      select id from (select id from mailer.email_outbox where status = 'cancelled' and last_error_code = ${code} order by id) c
      order by id)
    select m.id from coded cross join lateral (
      select id from mailer.email_outbox o
       where o.id = coded.id and last_error_code = ${code}
         and status in ('failed', 'cancelled') and (expires_at is null or expires_at > now())) m
     order by coded.id limit ${limit}`.execute(e.db)
  return rows.map((r) => String(r.id)).join()
}

/** `runs` taking turns, 9 measured after one: each one's answer, plans' buffers and median ms. */
async function turns(runs: Record<string, () => Promise<unknown>>) {
  const out: Record<string, { answer: unknown; buffers: number; ms: number[] }> = {}
  for (let i = 0; i <= 9; i++)
    for (const [name, run] of Object.entries(runs)) {
      e.notices.length = 0
      const answer = await run()
      const costs = e.notices.map(planCost)
      out[name] ??= { answer, buffers: 0, ms: [] }
      out[name].answer = answer
      out[name].buffers = costs.reduce((a, c) => a + c.buffers, 0)
      if (i > 0) out[name].ms.push(costs.reduce((a, c) => a + c.ms, 0))
    }
  const answers = new Set(Object.values(out).map((o) => JSON.stringify(o.answer)))
  if (answers.size > 1) throw new Error(`answers differ: ${Object.keys(out).join(', ')}`)
  return Object.entries(out)
    .map(([name, o]) => `${name} ${o.buffers} buf ${median(o.ms).toFixed(2)} ms`)
    .join(' -> ')
}

console.log(`${rows} rows; shared buffers and median ms of 9`)
const PAGES: [string, OutboxFilter][] = [
  ['status=failed', { status: ['failed'] }],
  ['status=failed,cancelled', { status: ['failed', 'cancelled'] }],
  ['status=failed&lastErrorCode=throttled', { status: ['failed'], lastErrorCode: 'throttled' }],
  ['(no status)', {}],
  ['lastErrorCode=throttled', { lastErrorCode: 'throttled' }],
]
for (const [name, base] of PAGES) {
  for (const delivered of [false, true]) {
    const f = { ...base, mayHaveBeenDelivered: delivered }
    const api = async () => (await listOutbox(e.db, f, { limit: LIMIT }, null)).items.length
    const oneStatus = f.status?.length === 1
    const line = oneStatus
      ? await turns({
          planned: () => pageOf(f, 'planned'),
          rowByRow: () => pageOf(f, 'rowByRow'),
        })
      : ''
    const page = await turns({ listOutbox: api })
    console.log(`page ${`${name}&mayHaveBeenDelivered=${delivered}`.padEnd(70)} ${line}  ${page}`)
  }
}
for (const code of ['throttled', 'ErrorInvalidRecipients', 'cancelled', 'none_such']) {
  const f = { lastErrorCode: code }
  const where = (eb: EB) => eb.and([matchOutbox(eb, f, null), requeueable(eb)])
  const count = await turns({
    before: () => countBefore(code),
    now: () => countRequeueable(e.db, f, null),
  })
  const batch = await turns({
    before: () => batchBefore(code, 1000),
    now: async () =>
      (await lowestFinishedWithCode(e.db, code, ['failed', 'cancelled'], where, 1000)).join(),
  })
  console.log(`retry lastErrorCode=${code.padEnd(24)} count ${count}; batch of 1,000 ${batch}`)
}
await e.db.destroy()
await b.close()
