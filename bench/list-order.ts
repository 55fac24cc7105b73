// `bun run bench/list-order.ts [kept]`: what `GET /v1/outbox` reads newest and oldest first, with one status and several, on a kept outbox.
//
// Fills `kept` finished rows (default 200,000, 1 KB bodies, one in 50 failed; 400 of the oldest sent
// ones then cancelled, an incident's batch), then 1,000 pending rows after them (a backlog), 5 of
// them among the oldest kept ids (rows stuck pending since: what `order=oldest&status=pending` is
// for). Then runs what the list runs for a page of 50 (list-plan.ts's explainPage, as listOutbox:
// listStatement, one more row; a span of the primary key where no index holds the rows, sent among
// the statuses or none given; both, summed, when the pending look leaves its rows to a span) with
// EXPLAIN (ANALYZE, BUFFERS), a first page and a page from the middle of each walk, in both orders.
// A span's page may be short: `items` its rows.
import { migrate } from '../src/db/migrate.ts'
import { openDb } from '../src/db/open.ts'
import type { OutboxStatus } from '../src/db/schema.ts'
import { silentLogger } from '../src/log.ts'
import type { ListOrder } from '../src/outbox/inspect.ts'
import type { OutboxFilter } from '../src/outbox/outbox-filter.ts'
import { startBenchCluster } from './cluster.ts'
import { fillKept } from './kept-rows.ts'
import { explainPage } from './list-plan.ts'
import { openProbe } from './systems/probe.ts'

const kept = Number(process.argv[2] ?? 200_000)
const cluster = await startBenchCluster()
const name = 'outbox_list_order'
await cluster.createDatabase(name)
await migrate({ url: cluster.url(name), log: silentLogger })
const probe = await openProbe(cluster.url(name))
try {
  await fillKept(probe, { kept, textBytes: 1024, failedEvery: 50 })
  await probe.query(
    `update mailer.email_outbox set status = 'cancelled', sent_at = null where status = 'sent' and id between 1000 and 1408`,
  )
  await probe.query(
    `update mailer.email_outbox set status = 'pending', sent_at = null, attempts = 0 where id in (101, 202, 303, 404, 505)`,
  )
  await probe.query(
    `select mailer.enqueue_email(jsonb_build_object('to', 'a@example.com', 'subject', 's', 'text', 't' || g)) from generate_series(1, 995) g`,
  )
  await probe.query('vacuum (freeze, analyze) mailer.email_outbox')
  const counts = await probe.query<{ status: string; n: string }>(
    'select status, count(*)::text as n from mailer.email_outbox group by 1 order by 1',
  )
  console.log(`kept ${kept} rows: ${counts.map((c) => `${c.status} ${c.n}`).join(', ')}`)
  const handle = openDb({ name: 'bench', url: cluster.url(name), log: silentLogger })
  const middle = String(Math.floor(kept / 2))
  const statuses: [string, OutboxStatus[] | undefined][] = [
    ['(none)', undefined],
    ['pending', ['pending']],
    ['failed', ['failed']],
    ['sent', ['sent']],
    ['failed,cancelled', ['failed', 'cancelled']],
    ['pending,failed', ['pending', 'failed']],
    ['pending,cancelled', ['pending', 'cancelled']],
    ['sent,failed', ['sent', 'failed']],
    ['pending,sent', ['pending', 'sent']],
  ]
  for (const order of ['newest', 'oldest'] as ListOrder[]) {
    for (const [label, status] of statuses) {
      for (const after of [undefined, middle]) {
        const filter: OutboxFilter = { status }
        const plan = await explainPage(probe, handle.db, filter, { limit: 50, order, after })
        if (!plan) continue
        const { executionMs, buffers, removed, how, items, spans, then } = plan
        const what = `order=${order} status=${label}${after ? ` after ${after}` : ''}`
        console.log(
          `${what.padEnd(46)} ${executionMs.toFixed(2).padStart(8)} ms  buffers ${String(buffers).padStart(6)}  removed by filter ${String(removed).padStart(7)}  items ${String(items).padStart(2)}${spans ? ' span' : then ? ' look, span' : ''}  ${how.join(', ')}`,
        )
      }
    }
  }
  await handle.close()
} finally {
  await probe.close()
  await cluster.stop()
}
