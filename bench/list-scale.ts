// `bun run bench/list-scale.ts [rows]`: what each shape of `GET /v1/outbox` reads on a million rows, kept and as a pending backlog.
//
// Two outboxes of `rows` rows (default 1,000,000; 64-byte bodies, inserted with generate_series),
// created one every 2.6 s over a month in id order, in 20 tenants (`t0`–`t19`, by id modulo 20) and
// a tenant `tiny` of 50 old rows:
//   kept:    finished rows (one in 50 failed, 400 cancelled), 10 sending, 1,000 pending at the end
//            and 5 stuck pending among the oldest;
//   backlog: every row pending (a million waiting behind an outage), 1,000 sent at the start.
// Then EXPLAIN (ANALYZE, BUFFERS) of the list's statement (src/outbox/inspect.ts's listStatement,
// a page of 50 and one more) for each shape: newest and oldest first, each status, several
// statuses, a tenant, a time window, a cursor deep in the list. `read` is the rows the scans
// returned plus those their filters removed; a page reads ~51: a shape reading thousands is flagged.
// A shape walking the primary key (walksPrimaryKey) reads one span (spanPageStatement, SPAN_ROWS
// ids at most) and may answer a short page: flagged past the span, `items` its page's rows. So
// does a page whose pending rows the look past its cursor leaves to a span (src/outbox/pending-near.ts):
// `look, span`, its line the sum of both statements.
import { migrate } from '../src/db/migrate.ts'
import { openDb } from '../src/db/open.ts'
import type { OutboxStatus } from '../src/db/schema.ts'
import { silentLogger } from '../src/log.ts'
import type { ListOrder } from '../src/outbox/inspect.ts'
import type { OutboxFilter } from '../src/outbox/outbox-filter.ts'
import { SPAN_ROWS } from '../src/outbox/span-page.ts'
import { startBenchCluster } from './cluster.ts'
import { explainPage } from './list-plan.ts'
import { openProbe, type Probe } from './systems/probe.ts'

const rows = Number(process.argv[2] ?? 1_000_000)
const CHUNK = 250_000
const FLAG_READ = 5_000

// $1 rows numbered from $2 in status $3 (sent rows get a sent_at, failed ones a code).
const FILL = `
  insert into mailer.email_outbox (tenant, created_at, send_at, message, sent_at, attempts, status,
                                   last_error_code)
  select 't' || ((($2::int + g) % 20)::text),
         timestamptz '2030-01-01' + ($2::int + g) * interval '2.6 s',
         timestamptz '2030-01-01' + ($2::int + g) * interval '2.6 s',
         jsonb_build_object('to', jsonb_build_array(jsonb_build_object('address', 'a@example.com')),
                            'subject', 's', 'text', md5(g::text) || md5(g::text)),
         case when $3 = 'sent' then timestamptz '2030-01-01' + ($2::int + g) * interval '2.6 s' end,
         case when $3 = 'pending' then 0 else 1 end, $3,
         case when $3 = 'failed' then 'graph_rejected' end
    from generate_series(1, $1::int) g`

async function fill(probe: Probe, status: OutboxStatus) {
  for (let done = 0; done < rows; done += CHUNK)
    await probe.query(FILL, [Math.min(CHUNK, rows - done), done, status])
}

async function kept(probe: Probe) {
  await fill(probe, 'sent')
  await probe.query(
    `update mailer.email_outbox set status = 'failed', sent_at = null, last_error_code = 'graph_rejected' where id % 50 = 0`,
  )
  await probe.query(
    `update mailer.email_outbox set status = 'cancelled', sent_at = null where status = 'sent' and id between 1000 and 1408`,
  )
  await probe.query(
    `update mailer.email_outbox set status = 'pending', sent_at = null, attempts = 0 where id in (101, 202, 303, 404, 505)`,
  )
  await probe.query(
    `update mailer.email_outbox set status = 'sending', sent_at = null, lease_owner = 'w', lease_token = gen_random_uuid(), lease_expires_at = now() + interval '1 hour' where id in (select id from mailer.email_outbox order by id desc limit 10)`,
  )
  await probe.query(
    `select mailer.enqueue_email(jsonb_build_object('to', 'a@example.com', 'subject', 's', 'text', 't' || g), jsonb_build_object('tenant', 't' || (g % 20))) from generate_series(1, 995) g`,
  )
}

async function backlog(probe: Probe) {
  await fill(probe, 'pending')
  await probe.query(
    `update mailer.email_outbox set status = 'sent', sent_at = created_at, attempts = 1 where id <= 1000`,
  )
}

/** The window of a day's shapes: ids 465,000-498,000 of the million. */
const DAY = { createdFrom: '2030-01-15T00:00:00Z', createdTo: '2030-01-16T00:00:00Z' }

const SHAPES: [string, OutboxFilter][] = [
  ['(none)', {}],
  ['pending', { status: ['pending'] }],
  ['sending', { status: ['sending'] }],
  ['sent', { status: ['sent'] }],
  ['failed', { status: ['failed'] }],
  ['cancelled', { status: ['cancelled'] }],
  ['failed,cancelled', { status: ['failed', 'cancelled'] }],
  ['pending,failed', { status: ['pending', 'failed'] }],
  ['tenant=t3', { tenant: 't3' }],
  ['tenant=tiny', { tenant: 'tiny' }],
  ['tenant=t3 pending', { tenant: 't3', status: ['pending'] }],
  ['tenant=t3 failed', { tenant: 't3', status: ['failed'] }],
  ['tenant=tiny pending', { tenant: 'tiny', status: ['pending'] }],
  ['created one day', { createdFrom: '2030-01-15T00:00:00Z', createdTo: '2030-01-16T00:00:00Z' }],
  [
    'created one hour sent',
    { createdFrom: '2030-01-15T00:00:00Z', createdTo: '2030-01-15T01:00:00Z', status: ['sent'] },
  ],
  [
    'created one day pending',
    { createdFrom: '2030-01-15T00:00:00Z', createdTo: '2030-01-16T00:00:00Z', status: ['pending'] },
  ],
  [
    'created one day pending,failed',
    {
      createdFrom: '2030-01-15T00:00:00Z',
      createdTo: '2030-01-16T00:00:00Z',
      status: ['pending', 'failed'],
    },
  ],
  ['sent one day', { sentFrom: '2030-01-15T00:00:00Z', sentTo: '2030-01-16T00:00:00Z' }],
  ['created one day failed', { ...DAY, status: ['failed'] }],
  ['created one day failed,cancelled', { ...DAY, status: ['failed', 'cancelled'] }],
  ['failed lastErrorCode=throttled', { status: ['failed'], lastErrorCode: 'throttled' }],
  ['sent,failed', { status: ['sent', 'failed'] }],
  ['sent,pending', { status: ['sent', 'pending'] }],
  ['created one day sent,failed', { ...DAY, status: ['sent', 'failed'] }],
]

const cluster = await startBenchCluster()
try {
  for (const [label, make] of [
    ['kept', kept],
    ['backlog', backlog],
  ] as const) {
    const name = `outbox_list_scale_${label}`
    await cluster.createDatabase(name)
    await migrate({ url: cluster.url(name), log: silentLogger })
    const probe = await openProbe(cluster.url(name))
    const handle = openDb({ name: 'bench', url: cluster.url(name), log: silentLogger })
    try {
      const t0 = performance.now()
      await make(probe)
      await probe.query(
        `insert into mailer.email_outbox (tenant, created_at, send_at, message, sent_at, attempts, status)
         select 'tiny', created_at, send_at, message, sent_at, attempts, status from mailer.email_outbox where id <= 50 order by id`,
      )
      await probe.query('vacuum (freeze, analyze) mailer.email_outbox')
      const counts = await probe.query<{ status: string; n: string }>(
        'select status, count(*)::text as n from mailer.email_outbox group by 1 order by 1',
      )
      console.log(
        `\n${label}: ${counts.map((c) => `${c.status} ${c.n}`).join(', ')} (filled in ${((performance.now() - t0) / 1000).toFixed(0)} s)`,
      )
      await explainAll(probe, handle.db)
    } finally {
      await handle.close()
      await probe.close()
    }
  }
} finally {
  await cluster.stop()
}

async function explainAll(probe: Probe, db: ReturnType<typeof openDb>['db']) {
  const deepNewest = String(Math.floor(rows / 10))
  const deepOldest = String(Math.floor((rows * 9) / 10))
  for (const order of ['newest', 'oldest'] as ListOrder[]) {
    for (const [label, filter] of SHAPES) {
      for (const after of [undefined, order === 'newest' ? deepNewest : deepOldest]) {
        const plan = await explainPage(probe, db, filter, { limit: 50, order, after })
        if (!plan) continue
        const { executionMs, buffers, read, how, items, spans, then } = plan
        const what = `${order} ${label}${after ? ` after ${after}` : ''}`
        // A span's ids, and for a pending page left to one the pending rows counted to SPAN_ROWS + 1.
        const allowed = FLAG_READ + (spans ? SPAN_ROWS : then ? 2 * SPAN_ROWS : 0)
        console.log(
          `${read > allowed ? '!' : ' '} ${what.padEnd(44)} ${executionMs.toFixed(2).padStart(9)} ms  buffers ${String(buffers).padStart(6)}  read ${String(read).padStart(8)}  items ${String(items).padStart(2)}${spans ? ' span' : then ? ' look, span' : ''}  ${how.join(', ')}`,
        )
      }
    }
  }
}
