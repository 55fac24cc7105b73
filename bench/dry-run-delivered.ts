// `bun run bench/dry-run-delivered.ts [rows]`: a bulk dry run's count with mayHaveBeenDelivered, its history read in one scan (countDelivered) against the criterion in the count's WHERE, taking turns.
//
// `rows` outbox rows (default 100,000) as bench/delivered-rows.ts fills them. For each filter and
// value, `where` (the criterion in the statement's WHERE: the count before round 58, as
// countMatching and countFinishedWithCode still run it given no `delivered`) and `array`
// (countRequeueable / countCancellable now) take turns, 9 measured after one unmeasured: the top
// node's shared buffers (the same each run) and the median duration, through auto_explain with
// per-node timing off. Both must give the same count.
import type { ExpressionBuilder } from 'kysely'
import type { Database } from '../src/db/schema.ts'
import { cancellable, countCancellable } from '../src/outbox/bulk-cancel.ts'
import { countRequeueable } from '../src/outbox/bulk-requeue.ts'
import { countFinishedWithCode, countMatching } from '../src/outbox/candidate-ids.ts'
import { matchOutbox, type OutboxFilter } from '../src/outbox/outbox-filter.ts'
import { requeueable } from '../src/outbox/requeue.ts'
import { startBenchTestDb } from './bench-test-db.ts'
import { fillDeliveredRows } from './delivered-rows.ts'
import { costsTakingTurns, openExplainedDb } from './explained-db.ts'
import { median } from './percentiles.ts'

const rows = Number(process.argv[2] ?? 100_000)
if (!Number.isInteger(rows) || rows < 100) {
  console.error('usage: bun run bench/dry-run-delivered.ts [rows ≥ 100]')
  process.exit(2)
}

const b = await startBenchTestDb('dry_run_delivered')
await fillDeliveredRows(b.probePool, rows)

const e = await openExplainedDb(b.t.url, { timing: false })
type EB = ExpressionBuilder<Database, 'mailer.email_outbox'>
const FILTERS: [string, OutboxFilter][] = [
  ['status failed', { status: ['failed'] }],
  ['status failed, cancelled', { status: ['failed', 'cancelled'] }],
  ['lastErrorCode throttled', { lastErrorCode: 'throttled' }],
  ['tenant t1', { tenant: 't1' }],
]
console.log(`${rows} rows; buffers and median ms of 9, where -> array`)
for (const [name, base] of FILTERS) {
  for (const delivered of [false, true]) {
    const f = { ...base, mayHaveBeenDelivered: delivered }
    for (const [action, rest, now] of [
      ['retry', requeueable, () => countRequeueable(e.db, f, null)],
      ['cancel', cancellable, () => countCancellable(e.db, f, null)],
    ] as const) {
      const counts: Record<string, number> = {}
      const runs = {
        // A retry by code alone read that code's rows first (countFinishedWithCode) before too.
        where: async () => {
          const where = (eb: EB) => eb.and([matchOutbox(eb, f, null), rest(eb)])
          counts.where =
            action === 'retry' && f.lastErrorCode !== undefined && f.tenant === undefined
              ? await countFinishedWithCode(e.db, f.lastErrorCode, where)
              : await countMatching(e.db, where)
        },
        array: async () => {
          counts.array = await now()
        },
      }
      await costsTakingTurns(e, runs, 1)
      const c = await costsTakingTurns(e, runs, 9)
      if (counts.where !== counts.array) throw new Error(`${name} ${action}: counts differ`)
      const line = (k: 'where' | 'array') =>
        `${c[k]!.buffers[0]} buf ${median(c[k]!.ms).toFixed(1)} ms`
      console.log(
        `${action.padEnd(6)} ${`${name}, ${delivered}`.padEnd(32)} ${String(counts.array).padStart(6)} rows  ${line('where')} -> ${line('array')}`,
      )
    }
  }
}
await e.db.destroy()
await b.close()
