// Listing by correlation id finds its rows through indexes (0010), not by walking every kept row.
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import type { Transaction } from 'kysely'
import type { Database, OutboxStatus } from '../../src/db/schema.ts'
import { listOutbox } from '../../src/outbox/inspect.ts'
import { useTestDb } from '../support/db.ts'
import { allPages } from '../support/list-all-pages.ts'
import { outboxHeapPages, outboxReadsOf } from '../support/outbox-reads.ts'
import { insertRowsInStates } from '../support/rows-in-states.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const INDEX = 'mailer.email_outbox_correlation_idx'

const t = useTestDb()
beforeAll(async () => {
  // 20,000 sent rows, each with its own order id, and 5,000 without one; 60 pending rows of other
  // orders (a backlog the lookup must check). `inq-9` has rows in every status, in two tenants,
  // spread from the oldest to the newest.
  await insertRowsInStates(
    t.pool,
    `select 'default' as tenant, 'sent' as status, 'order-' || g as correlation_id, g as k
       from generate_series(1, 20000) g
     union all
     select 'default', 'sent', null, g from generate_series(1, 5000) g
     union all
     select 'default', 'pending', 'order-b' || g, 20000 + g from generate_series(1, 60) g
     union all
     select tenant, status, 'inq-9', k
       from (values ('default', 'sent', 1), ('acme', 'sent', 9000), ('default', 'failed', 12000),
                    ('default', 'cancelled', 15000), ('acme', 'sent', 19999),
                    ('default', 'pending', 20001), ('acme', 'pending', 20002),
                    ('default', 'sending', 20003)) v(tenant, status, k)`,
    's.k, s.status',
  )
})

/** What a plain scan of the table says, newest first. */
async function truth(correlationId: string, statuses?: OutboxStatus[], tenant?: string) {
  const { rows } = await t.pool.query<{ id: string }>(
    `select id from mailer.email_outbox
      where correlation_id = $1 and ($2::text[] is null or status = any($2))
        and ($3::text is null or tenant = $3)
      order by id desc`,
    [correlationId, statuses ?? null, tenant ?? null],
  )
  return rows.map((r) => String(r.id))
}

describe('listing by correlation id (0010_correlation_index)', () => {
  test('finds the same rows as a scan, in every status, page by page, within filters and tenant scope', async () => {
    const all = await truth('inq-9')
    expect(all).toHaveLength(8)
    expect(await allPages(t.db, { correlationId: 'inq-9' }, 50, null)).toEqual(all)
    expect(await allPages(t.db, { correlationId: 'inq-9' }, 3, null)).toEqual(all)
    expect(
      await allPages(t.db, { correlationId: 'inq-9', status: ['pending', 'sent'] }, 2, null),
    ).toEqual(await truth('inq-9', ['pending', 'sent']))
    expect(await allPages(t.db, { correlationId: 'inq-9' }, 2, 'acme')).toEqual(
      await truth('inq-9', undefined, 'acme'),
    )
    expect(await allPages(t.db, { correlationId: 'inq-9', tenant: 'acme' }, 50, 'default')).toEqual(
      [],
    )
    expect(await allPages(t.db, { correlationId: 'inq-9', status: [] }, 50, null)).toEqual([])
    expect(await allPages(t.db, { correlationId: 'order-12345' }, 50, null)).toEqual(
      await truth('order-12345'),
    )
    expect(await allPages(t.db, { correlationId: 'nobody' }, 50, null)).toEqual([])
    const page = await listOutbox(t.db, { correlationId: 'inq-9' }, { limit: 3 }, null)
    expect(page.items.map((i) => [i.id, i.correlationId])).toEqual(
      all.slice(0, 3).map((id) => [id, 'inq-9']),
    )
    expect(page.next).toBe(all[2]!)
  })

  test('a lookup reads its rows and the backlog, not the kept ones; without the index, half the heap', async () => {
    const pages = await outboxHeapPages(t.pool)
    expect(pages).toBeGreaterThan(500)
    const lookup = (trx: Transaction<Database>) =>
      listOutbox(trx, { correlationId: 'inq-9' }, { limit: 50 }, null)
    const now = await outboxReadsOf(t.db, lookup)
    expect(now.result.items.map((i) => i.id)).toEqual(await truth('inq-9'))
    // Its 8 rows, each fetched twice (found, then read for the page), and the 63 pending and
    // sending rows checked for the id: a few pages at the table's end.
    expect(now.heapPages).toBeLessThanOrEqual(40)
    expect(now.seqScans).toBe(0)
    const before = await outboxReadsOf(t.db, lookup, { dropIndex: INDEX })
    expect(before.result).toEqual(now.result)
    expect(before.heapPages).toBeGreaterThan(pages / 2)
  })
})
