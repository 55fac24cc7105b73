// `bun run bench/dry-run-delivered.ts [rows]`: a bulk dry run's count with mayHaveBeenDelivered, its history read in one scan (countDelivered) against the criterion in the count's WHERE, taking turns.
//
// `rows` outbox rows (default 100,000): by id modulo 100, 8 in 100 failed (throttled,
// graph_rejected, ErrorInvalidRecipients in turn), 2 cancelled, 10 pending (3 of them after a
// throttle), the rest sent; a seventh of the failed and cancelled ones keep an interrupted send's
// mark; every row but an untried pending one has 1-2 history entries, the first of one in 40 of
// the failed, cancelled and pending ones an ambiguous_send, each with a worker and a request id
// (the history's width decides the planner's choice between the two plans of the WHERE form). Vacuumed. For each filter and value,
// `where` (the criterion in the statement's WHERE: the count before round 58, as countMatching
// and countFinishedWithCode still run it given no `delivered`) and `array` (countRequeueable / countCancellable now) take turns, 9
// measured after one unmeasured: the top node's shared buffers (the same each run) and the median
// duration, through auto_explain with per-node timing off. Both must give the same count.
import type { ExpressionBuilder } from 'kysely'
import type { Database } from '../src/db/schema.ts'
import { cancellable, countCancellable } from '../src/outbox/bulk-cancel.ts'
import { countRequeueable } from '../src/outbox/bulk-requeue.ts'
import { countFinishedWithCode, countMatching } from '../src/outbox/candidate-ids.ts'
import { matchOutbox, type OutboxFilter } from '../src/outbox/outbox-filter.ts'
import { requeueable } from '../src/outbox/requeue.ts'
import { startBenchTestDb } from './bench-test-db.ts'
import { costsTakingTurns, openExplainedDb } from './explained-db.ts'
import { median } from './percentiles.ts'

const rows = Number(process.argv[2] ?? 100_000)
if (!Number.isInteger(rows) || rows < 100) {
  console.error('usage: bun run bench/dry-run-delivered.ts [rows ≥ 100]')
  process.exit(2)
}

const b = await startBenchTestDb('dry_run_delivered')
const q = (text: string) => b.probePool.query(text)
await q(`insert into mailer.email_outbox (tenant, send_at, message, sent_at, attempts, status, last_error_code)
  select 't' || (g % 5), now() - interval '1 day',
         jsonb_build_object('to', jsonb_build_array(jsonb_build_object('address', 'a@example.com')),
                            'subject', 's', 'text', md5(g::text)),
         case when g % 100 >= 20 then now() end,
         case when g % 100 between 10 and 19 then 0 else 1 end,
         case when g % 100 < 8 then 'failed' when g % 100 < 10 then 'cancelled'
              when g % 100 < 20 then 'pending' else 'sent' end,
         case when g % 100 < 8 then (array['throttled', 'graph_rejected', 'ErrorInvalidRecipients'])[1 + g % 3]
              when g % 100 < 10 then 'cancelled' when g % 100 < 13 then 'throttled' end
    from generate_series(1, ${rows}) g`)
await q(`update mailer.email_outbox set send_started_at = now() - interval '1 hour'
          where status in ('failed', 'cancelled') and id % 7 = 0`)
await q(`insert into mailer.email_attempts (outbox_id, attempt, outcome, error_code, error, kind,
                                           worker_id, request_id)
  select o.id, a, case when o.status = 'sent' and a = 1 then 'sent' else 'failed' end,
         case when o.status = 'sent' and a = 1 then null
              when o.id % 40 = 0 and o.status <> 'sent' and a = 1 then 'ambiguous_send'
              else coalesce(o.last_error_code, 'throttled') end,
         case when o.status = 'sent' and a = 1 then null else 'failed: an error of a usual length' end,
         case when o.status = 'sent' and a = 1 then null else 'attempt' end,
         'worker-' || (o.id % 4), gen_random_uuid()::text
    from mailer.email_outbox o, generate_series(1, 1 + (o.id % 2)::int) a
   where o.status <> 'pending' or o.last_error_code is not null`)
await q('vacuum analyze mailer.email_outbox')
await q('vacuum analyze mailer.email_attempts')

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
