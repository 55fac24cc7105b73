// `bun run bench/year-outbox-api.ts [rows] [pending] [--plans]`: every read of the HTTP API and `status` on an outbox a year in.
//
// Fills one outbox (bench/year-outbox-fill.ts: default 2,000,000 rows, 3 tenants, the newest
// 20,000 pending, each row's history), then asks the app in-process (dev mode, no token) what a
// user asks: GET /v1/outbox with each filter the API documents, newest and oldest first, from the
// start and from a cursor deep in the list (a tenth of the ids from the far end); a walk of 40
// pages of 200 failed rows; one row with its history; /v1/stats; bulk cancel and retry dry runs;
// bulk retries by lastErrorCode as a caller loops them, without and with the cursor, rolled back;
// three /metrics scrapes; `status`'s reads (readDatabaseStatus). Each line is one request's wall time (a retry loop's: all
// its calls), its HTTP status and what came back; `!` marks one past 500 ms (a 503 is the API's 5 s
// statement timeout). With --plans, auto_explain prints the plan (ANALYZE, BUFFERS) of every
// statement past 150 ms as it runs. Wall times on a shared machine: compare within one run.
// YEAR_OUTBOX_URL=<a database it filled before> asks that one again, neither started nor filled
// (rows and pending must be those it was filled with; --plans then needs auto_explain there);
// --only=<text> asks only the lines whose label holds it (`--only="dry run"`).
import pg from 'pg'
import { encodeCursor } from '../src/api/cursor.ts'
import { migrate } from '../src/db/migrate.ts'
import { openDb } from '../src/db/open.ts'
import { silentLogger } from '../src/log.ts'
import type { BulkLoopSpan } from '../src/outbox/bulk-loop-span.ts'
import { requeueLoopStep } from '../src/outbox/bulk-requeue.ts'
import { outboxStats } from '../src/outbox/outbox-stats.ts'
import { withStatementTimeout } from '../src/outbox/statement-timeout.ts'
import { readDatabaseStatus } from '../src/status/database-status.ts'
import { appOnDefault } from '../test/api/support/harness.ts'
import { startBenchCluster } from './cluster.ts'
import { fillYearOutbox } from './year-outbox-fill.ts'

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'))
const rows = Number(args[0] ?? 2_000_000)
const pending = Number(args[1] ?? 20_000)
const plans = process.argv.includes('--plans')
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length)
const reuse = process.env.YEAR_OUTBOX_URL

const DAY = 'createdFrom=2026-06-01T00:00:00Z&createdTo=2026-06-02T00:00:00Z'
const SHAPES: [string, string][] = [
  ['(none)', ''],
  ...['pending', 'sending', 'sent', 'failed', 'cancelled'].map((s): [string, string] => [
    s,
    `status=${s}`,
  ]),
  ['failed,cancelled', 'status=failed&status=cancelled'],
  ['pending,failed', 'status=pending&status=failed'],
  ['sent,failed', 'status=sent&status=failed'],
  ['tenant=corp', 'tenant=corp'],
  ['tenant=corp failed', 'tenant=corp&status=failed'],
  ['tenant=corp pending', 'tenant=corp&status=pending'],
  ['created one day', DAY],
  ['created one month', 'createdFrom=2026-06-01T00:00:00Z&createdTo=2026-07-01T00:00:00Z'],
  ['sent one day', 'sentFrom=2026-06-01T00:00:00Z&sentTo=2026-06-02T00:00:00Z'],
  ['created one day failed', `${DAY}&status=failed`],
  ['dedupeKey', `dedupeKey=order-${2 * Math.floor(rows / 4)}`],
  ['dedupeKey none', 'dedupeKey=none'],
  ['correlationId', `correlationId=orders:${3 * Math.floor(rows / 6)}`],
  ['template', 'template=order_confirmation'],
  ['template failed', 'template=order_confirmation&status=failed'],
  ['template sent', 'template=order_confirmation&status=sent'],
  ['lastErrorCode', 'lastErrorCode=expired'],
  ['failed lastErrorCode', 'status=failed&lastErrorCode=expired'],
  ['pending lastErrorCode', 'status=pending&lastErrorCode=throttled'],
]
/** Bulk dry runs: a label, the filter, and the actions that take it (retry refuses pending, cancel failed). */
const BULK: [string, object, ('cancel' | 'retry')[]][] = [
  ['pending', { status: ['pending'] }, ['cancel']],
  ['tenant=corp', { tenant: 'corp' }, ['cancel', 'retry']],
  ['failed', { status: ['failed'] }, ['retry']],
  ['failed lastErrorCode', { status: ['failed'], lastErrorCode: 'expired' }, ['retry']],
  ['template', { template: 'order_confirmation' }, ['cancel', 'retry']],
  [
    'created one day',
    { createdFrom: '2026-06-01T00:00:00Z', createdTo: '2026-06-02T00:00:00Z' },
    ['cancel', 'retry'],
  ],
]

class RolledBack extends Error {}

const explain = [
  'auto_explain.log_min_duration=150',
  'auto_explain.log_analyze=on',
  'auto_explain.log_buffers=on',
]
const cluster = reuse
  ? null
  : await startBenchCluster({
      extraFlags: [
        '-c',
        `shared_preload_libraries=pg_stat_statements${plans ? ',auto_explain' : ''}`,
        ...(plans ? explain.flatMap((s) => ['-c', s]) : []),
      ],
      onLogLine: (l) => {
        if (plans && (/duration: .* plan:/.test(l) || l.startsWith('\t'))) console.log(`    ${l}`)
      },
    })
try {
  let url = reuse ?? ''
  if (cluster) {
    url = cluster.url('year_outbox')
    await cluster.createDatabase('year_outbox')
    await migrate({ url, log: silentLogger })
    const client = new pg.Client(url)
    await client.connect()
    const t0 = performance.now()
    await fillYearOutbox(client, rows, pending)
    await client.end()
    console.log(
      `${rows} rows, ${pending} pending, filled in ${((performance.now() - t0) / 1000).toFixed(0)} s`,
    )
  }
  const handle = openDb({ name: 'default', url, log: silentLogger })
  // Dev mode: no token, every tenant's rows (the harness's app over this database, as test/api's).
  const { app, deps } = appOnDefault(handle, {
    dev: true,
    auth: { jwtSecret: null, jwksUrl: null, issuer: null, audience: null },
  })
  const line = (label: string, ms: number, what: string) =>
    console.log(
      `${ms > 500 ? '!' : ' '} ${label.padEnd(50)} ${ms.toFixed(0).padStart(6)} ms  ${what}`,
    )
  const asked = (label: string) => only === undefined || label.includes(only)
  const ask = async (label: string, path: string, init?: RequestInit) => {
    if (!asked(label)) return {}
    const t = performance.now()
    const res = await app.request(`http://bench${path}`, init)
    const body = (await res.json()) as Record<string, unknown>
    const items = Array.isArray(body.items)
      ? `${body.items.length} rows${body.nextCursor ? ', more' : ''}`
      : ''
    const what =
      body.matched !== undefined ? `matched ${body.matched}` : items || String(body.code ?? '')
    line(label, performance.now() - t, `${res.status} ${what}`)
    return body
  }
  for (const order of ['newest', 'oldest'] as const) {
    const deep = encodeCursor(order, String(order === 'newest' ? rows / 10 : (rows * 9) / 10))
    for (const [label, q] of SHAPES) {
      await ask(`${order} ${label}`, `/v1/outbox?order=${order}&${q}`)
      await ask(`${order} ${label} deep`, `/v1/outbox?order=${order}&${q}&cursor=${deep}`)
    }
  }
  let cursor = ''
  for (let page = 1; page <= (asked('failed, page') ? 40 : 0); page++) {
    const t = performance.now()
    const res = await app.request(`http://bench/v1/outbox?status=failed&limit=200${cursor}`)
    const body = (await res.json()) as { nextCursor: string | null }
    if (page % 10 === 0) line(`failed, page ${page} of 200`, performance.now() - t, '')
    if (!body.nextCursor) break
    cursor = `&cursor=${body.nextCursor}`
  }
  await ask('one sent row with its history', `/v1/outbox/${rows / 2}`)
  await ask('one failed row with its history', `/v1/outbox/${67 * Math.floor(rows / 134)}`)
  await ask('stats', '/v1/stats')
  if (asked('stats of a tenant')) {
    // A tenant's token asks /v1/stats so: its counts, with its rows alone (outboxStats, as the route).
    const t = performance.now()
    const s = await withStatementTimeout(handle.db, 30_000, (trx) => outboxStats(trx, 'corp'))
    line('stats of a tenant (corp)', performance.now() - t, `sent ${s.counts.sent}`)
  }
  const post = (filter: object) => ({
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ filter, dryRun: true }),
  })
  for (const [label, filter, actions] of BULK) {
    for (const action of actions)
      await ask(`${action} dry run ${label}`, `/v1/outbox/${action}`, post(filter))
  }
  // Bulk retries in batches of 1,000 while `more`, in one transaction rolled back so the outbox
  // stays as filled: a code a quarter of the failed rows hold, and one none holds, a rare code's
  // bound (before round 53, each batch read every failed row). Each loop as a caller without the
  // cursor runs it (each call requeueLoopStep from no span, as the route does: bounded by the
  // highest id, from the lowest matching id), then passing each call's span to the next (round 54).
  for (const code of ['expired', 'ErrorQuotaExceeded']) {
    for (const cursor of [false, true]) {
      const label = `retry loop lastErrorCode=${code}${cursor ? ', cursor' : ''} (rolled back)`
      if (!asked(label)) continue
      const t = performance.now()
      const batches: number[] = []
      let requeued = 0
      await handle.db
        .transaction()
        .execute(async (trx) => {
          let span: BulkLoopSpan | null = null
          for (let more = true; more; ) {
            const b = performance.now()
            const r = await requeueLoopStep(trx, { lastErrorCode: code }, null, {
              limit: 1000,
              span,
            })
            batches.push(performance.now() - b)
            requeued += r.items.length
            more = r.more
            if (cursor) span = r.next
          }
          throw new RolledBack()
        })
        .catch((e) => {
          if (!(e instanceof RolledBack)) throw e
        })
      const each = batches.map((b) => b.toFixed(0)).join(' ')
      line(label, performance.now() - t, `${requeued} rows, batches ${each} ms`)
    }
  }
  for (let scrape = 1; scrape <= (asked('metrics scrape') ? 3 : 0); scrape++) {
    const t = performance.now()
    await deps.metrics.render()
    line(`metrics scrape ${scrape}`, performance.now() - t, '')
  }
  if (asked('status (readDatabaseStatus)')) {
    const t = performance.now()
    const status = await readDatabaseStatus(
      { name: 'default', url } as Parameters<typeof readDatabaseStatus>[0],
      { timeoutMs: 30_000, leaseSeconds: 60 },
    )
    line('status (readDatabaseStatus)', performance.now() - t, status.error?.message ?? 'ok')
  }
  await handle.close()
} finally {
  await cluster?.stop()
}
