// A list page of failed or cancelled rows narrowed by a window, lastErrorCode or mayHaveBeenDelivered reads a bounded run of their index past its cursor, never every failed row.
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import type { Transaction } from 'kysely'
import type { Database } from '../../src/db/schema.ts'
import { type ListOrder, listOutbox } from '../../src/outbox/inspect.ts'
import type { OutboxFilter } from '../../src/outbox/outbox-filter.ts'
import { useTestDb } from '../support/db.ts'
import { allPages, scanIds } from '../support/list-all-pages.ts'
import { outboxReadsOf } from '../support/outbox-reads.ts'
import { insertRowsInStates, updateFlushed } from '../support/rows-in-states.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
beforeAll(async () => {
  // 6,000 rows, one created a minute in id order: every other row failed (3,000), one in 40
  // cancelled (150), the rest sent; tenant `tiny` holds one row in 100. Three failed rows in
  // the middle carry a rare code, the others graph_rejected.
  await insertRowsInStates(
    t.pool,
    `select case when g % 100 = 7 then 'tiny' else 'big' end as tenant,
            case when g % 2 = 0 then 'failed' when g % 40 = 1 then 'cancelled' else 'sent' end as status,
            null::text as correlation_id, g as k
       from generate_series(1, 6000) g`,
    's.k',
  )
  await updateFlushed(
    t.pool,
    `update mailer.email_outbox
        set created_at = timestamptz '2030-01-01' + id * interval '1 minute',
            last_error_code = case when status <> 'failed' then null
                                   when id in (2950, 3000, 3050) then 'rare' else 'graph_rejected' end,
            -- The rare rows keep an interrupted send's mark: a send may have delivered them.
            send_started_at = case when id in (2950, 3000, 3050) then now() end`,
  )
  await t.pool.query('vacuum (analyze) mailer.email_outbox')
})

// Ids 2,941-3,000 (created 2030-01-03 01:00-02:00): 3,000 ids, 1,500 failed rows, from either end.
const WINDOW = { createdFrom: '2030-01-03T01:00:00Z', createdTo: '2030-01-03T02:00:00Z' }
const IN_WINDOW = `created_at >= '2030-01-03T01:00:00Z' and created_at < '2030-01-03T02:00:00Z'`

/** A label, the filter, the caller's tenant, and what a plain scan of the table matches. */
const SHAPES: [string, OutboxFilter, string | null, string][] = [
  [
    'failed in a window',
    { status: ['failed'], ...WINDOW },
    null,
    `status = 'failed' and ${IN_WINDOW}`,
  ],
  [
    'cancelled in a window',
    { status: ['cancelled'], ...WINDOW },
    null,
    `status = 'cancelled' and ${IN_WINDOW}`,
  ],
  [
    'failed and cancelled in a window',
    { status: ['cancelled', 'failed'], ...WINDOW },
    null,
    `status in ('failed', 'cancelled') and ${IN_WINDOW}`,
  ],
  [
    'failed with a rare code',
    { status: ['failed'], lastErrorCode: 'rare' },
    null,
    `status = 'failed' and last_error_code = 'rare'`,
  ],
  [
    'failed a send may have delivered',
    { status: ['failed'], mayHaveBeenDelivered: true },
    null,
    `status = 'failed' and send_started_at is not null`,
  ],
  [
    "a tenant's failed in a window",
    { status: ['failed'], tenant: 'big', ...WINDOW },
    null,
    `status = 'failed' and tenant = 'big' and ${IN_WINDOW}`,
  ],
  [
    "failed in a window, a tenant's key",
    { status: ['failed'], ...WINDOW },
    'big',
    `status = 'failed' and tenant = 'big' and ${IN_WINDOW}`,
  ],
]

describe.each(SHAPES)('%s', (_label, f, scope, where) => {
  test.each(['newest', 'oldest'] as const)(
    'lists what a scan finds, in order, none twice, page by page, order=%s',
    async (order) => {
      const all = await scanIds(t.pool, where, order)
      expect(all.length).toBeGreaterThan(0)
      for (const limit of [3, 50]) {
        const ids = await allPages(t.db, f, limit, scope, { order })
        expect({ limit, ids }).toEqual({ limit, ids: all })
      }
    },
  )
})

test('a page reads a bounded run of the failed and cancelled rows past its cursor, not every one before the window, from either end', async () => {
  const read: { label: string; order: ListOrder; rows: number }[] = []
  for (const [label, f, scope] of SHAPES) {
    for (const order of ['newest', 'oldest'] as const) {
      const page = (trx: Transaction<Database>) => listOutbox(trx, f, { limit: 5, order }, scope)
      const r = await outboxReadsOf(t.db, page)
      read.push({ label, order, rows: r.rowsRead })
    }
  }
  // 1,500 failed rows lie between either end and the window; a page looks at 20 pages of 6 of them.
  expect(read.filter((r) => r.rows >= 1000)).toEqual([])
})
