// A page of pending rows alone, past a year of finished rows: looked for past its cursor, sorted when few, else a span; never the primary key walked to them.
import { beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import type { Transaction } from 'kysely'
import type { Database } from '../../src/db/schema.ts'
import { type ListOrder, listOutbox } from '../../src/outbox/inspect.ts'
import { useTestDb } from '../support/db.ts'
import { allPages, scanIds } from '../support/list-all-pages.ts'
import { outboxReadsOf } from '../support/outbox-reads.ts'
import { insertRowsInStates } from '../support/rows-in-states.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/** Ids a span reads, and the pending rows past which a page walks spans instead of sorting them. */
const SPAN = 200

const t = useTestDb()
beforeAll(async () => {
  // 10,000 rows in id order: 9,500 finished (one in 50 failed), then 500 pending waiting behind
  // an outage; 3 pending stuck among the oldest. 5% pending, spread evenly as far as the planner
  // knows: it walked the primary key from the oldest row, every finished one, for a page of them.
  await insertRowsInStates(
    t.pool,
    `select 'big' as tenant,
            case when g > 9500 or g in (40, 41, 42) then 'pending'
                 when g % 50 = 0 then 'failed' else 'sent' end as status,
            null::text as correlation_id, g as k
       from generate_series(1, 10000) g`,
    's.k',
  )
  await t.pool.query('analyze mailer.email_outbox')
})

test('a page of pending rows reads what is near its cursor, the few pending rows or a span, not every finished row before them', async () => {
  const read: { order: ListOrder; after: string | undefined; spanRows: number; rows: number }[] = []
  for (const order of ['newest', 'oldest'] as const) {
    // From either end, and from a cursor among the finished rows (the next page after the stuck ones).
    for (const after of [undefined, order === 'oldest' ? '100' : '9000']) {
      // SPAN: more rows pending than a span, so a span is walked; 10,000: few, so sorted.
      for (const spanRows of [SPAN, 10_000]) {
        const page = (trx: Transaction<Database>) =>
          listOutbox(trx, { status: ['pending'] }, { limit: 50, order, after, spanRows }, null)
        const r = await outboxReadsOf(t.db, page)
        read.push({ order, after, spanRows, rows: r.rowsRead })
      }
    }
  }
  // The look past the cursor is 1,000 ids, a span 200, the pending rows 503; finished rows 9,497.
  // Entries are counted per index a plan reads (a bitmap of two counts both): CI's Postgres 17
  // read 2,082 for oldest-first, sorted. A walk to the pending rows reads every finished one.
  expect(read.filter((r) => r.rows >= 4_000)).toEqual([])
})

test.each(['newest', 'oldest'] as const)(
  'pending alone lists what a scan finds, in order, none twice, page by page, order=%s',
  async (order) => {
    const all = await scanIds(t.pool, `status = 'pending'`, order)
    for (const spanRows of [SPAN, 10_000]) {
      const ids = await allPages(t.db, { status: ['pending'] }, 50, null, { order, spanRows })
      expect({ spanRows, ids }).toEqual({ spanRows, ids: all })
    }
  },
)
