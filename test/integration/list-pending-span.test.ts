// A list page of pending rows narrowed by a column no index holds, or of several statuses (sent among them), reads one span under a backlog, never every pending row.
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import type { Transaction } from 'kysely'
import type { Database } from '../../src/db/schema.ts'
import { type ListOrder, listOutbox } from '../../src/outbox/inspect.ts'
import type { OutboxFilter } from '../../src/outbox/outbox-filter.ts'
import { useTestDb } from '../support/db.ts'
import { allPages, scanIds } from '../support/list-all-pages.ts'
import { outboxReadsOf } from '../support/outbox-reads.ts'
import { insertRowsInStates } from '../support/rows-in-states.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/** Ids a span reads, and the pending rows past which a page walks spans instead of sorting them. */
const SPAN = 100

const t = useTestDb()
beforeAll(async () => {
  // 3,000 rows, one created a minute in id order: the oldest 300 sent, then an outage's backlog,
  // every row pending but one in 40 failed; tenant `tiny` holds 5, 2 among the oldest.
  await insertRowsInStates(
    t.pool,
    `select case when g in (2, 3, 1510, 1530, 2500) then 'tiny' else 'big' end as tenant,
            case when g <= 300 then 'sent' when g % 40 = 0 then 'failed' else 'pending' end as status,
            null::text as correlation_id, g as k
       from generate_series(1, 3000) g`,
    's.k',
  )
  await t.pool.query(
    `begin;
     set local synchronous_commit = on;
     update mailer.email_outbox set created_at = timestamptz '2030-01-01' + id * interval '1 minute';
     commit`,
  )
  await t.pool.query('analyze mailer.email_outbox')
})

const WINDOW = { createdFrom: '2030-01-02T01:00:00Z', createdTo: '2030-01-02T02:00:00Z' }
const IN_WINDOW = `created_at >= '2030-01-02T01:00:00Z' and created_at < '2030-01-02T02:00:00Z'`

/** A label, the filter, the caller's tenant, and what a plain scan of the table matches. */
const SHAPES: [string, OutboxFilter, string | null, string, number[]?][] = [
  [
    'pending in a window',
    { status: ['pending'], ...WINDOW },
    null,
    `status = 'pending' and ${IN_WINDOW}`,
  ],
  [
    'pending of a tenant',
    { status: ['pending'], tenant: 'tiny' },
    null,
    `status = 'pending' and tenant = 'tiny'`,
  ],
  [
    "pending, a tenant's key",
    { status: ['pending'] },
    'tiny',
    `status = 'pending' and tenant = 'tiny'`,
  ],
  // 2,760 rows: pages of 50 and 200 (3 would be a thousand pages a walk).
  [
    'pending and failed',
    { status: ['pending', 'failed'] },
    null,
    `status in ('pending', 'failed')`,
    [50, 200],
  ],
  [
    'pending and failed in a window',
    { status: ['failed', 'pending'], ...WINDOW },
    null,
    `status in ('pending', 'failed') and ${IN_WINDOW}`,
  ],
  // Sent among others: a span, as sent alone (walksPrimaryKey), not the primary key to a page.
  ['sent and failed', { status: ['sent', 'failed'] }, null, `status in ('sent', 'failed')`],
  [
    'sent and failed in a window',
    { status: ['failed', 'sent'], ...WINDOW },
    null,
    `status in ('sent', 'failed') and ${IN_WINDOW}`,
  ],
]

describe.each(SHAPES)('%s', (_label, f, scope, where, limits = [3, 50]) => {
  // Four walks of every page, mostly CPU (the file's 11 tests: 9.8 s in round 48's CI); one was cut
  // at 30 s on 17 in CI (round 49, load 20-29, eight test runs beside it).
  test.each(['newest', 'oldest'] as const)(
    'lists what a scan finds, in order, none twice, page by page, walking spans or sorting the pending rows, order=%s',
    async (order) => {
      const all = await scanIds(t.pool, where, order)
      // SPAN: more rows pending than a span, so spans are walked; 10,000: few, so sorted.
      for (const spanRows of [SPAN, 10_000]) {
        for (const limit of limits) {
          const ids = await allPages(t.db, f, limit, scope, { order, spanRows })
          expect({ spanRows, limit, ids }).toEqual({ spanRows, limit, ids: all })
        }
      }
    },
    90_000,
  )
})

describe('under the backlog', () => {
  test('a page reads a few spans of rows under the backlog, not every pending row, from either end', async () => {
    const read: { label: string; order: ListOrder; rows: number }[] = []
    for (const [label, f, scope] of SHAPES) {
      for (const order of ['newest', 'oldest'] as const) {
        const page = (trx: Transaction<Database>) =>
          listOutbox(trx, f, { limit: 5, order, spanRows: SPAN }, scope)
        const r = await outboxReadsOf(t.db, page)
        read.push({ label, order, rows: r.rowsRead })
      }
    }
    // A span is SPAN ids, the look past the cursor 20 pages of 5; 2,700 rows are pending.
    expect(read.filter((r) => r.rows >= 1000)).toEqual([])
  })
})
