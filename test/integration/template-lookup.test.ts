// Listing by template finds its rows through indexes (0045), not by walking every kept row.
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import type { Transaction } from 'kysely'
import type { Database, OutboxStatus } from '../../src/db/schema.ts'
import { listOutbox } from '../../src/outbox/inspect.ts'
import { vacuumAllVisible } from '../support/all-visible-vacuum.ts'
import { useTestDb } from '../support/db.ts'
import { allPages } from '../support/list-all-pages.ts'
import { outboxHeapPages, outboxReadsOf } from '../support/outbox-reads.ts'
import { insertRowsInStates } from '../support/rows-in-states.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const INDEX = 'mailer.email_outbox_template_idx'

const t = useTestDb()
beforeAll(async () => {
  // 20,000 sent rows of template `welcome` and 5,000 sent without one; 60 pending rows of
  // `welcome` (a backlog the lookup must check). `receipt` has rows in every status, in two
  // tenants, spread from the oldest to the newest. The template is set after the insert, as a
  // trigger leaves such rows: template and source row, no message.
  await insertRowsInStates(
    t.pool,
    `select 'default' as tenant, 'sent' as status, 'welcome' as correlation_id, g as k
       from generate_series(1, 20000) g
     union all
     select 'default', 'sent', null, g from generate_series(1, 5000) g
     union all
     select 'default', 'pending', 'welcome', 20000 + g from generate_series(1, 60) g
     union all
     select tenant, status, 'receipt', k
       from (values ('default', 'sent', 1), ('acme', 'sent', 9000), ('default', 'failed', 12000),
                    ('default', 'cancelled', 15000), ('acme', 'sent', 19999),
                    ('default', 'pending', 20001), ('acme', 'pending', 20002),
                    ('default', 'sending', 20003)) v(tenant, status, k)`,
    's.k, s.status',
  )
  await t.pool.query(
    `begin;
     set local synchronous_commit = on;
     update mailer.email_outbox
        set template = correlation_id, correlation_id = null, message = null,
            source_row = jsonb_build_object('id', id)
      where correlation_id is not null;
     commit`,
  )
  await vacuumAllVisible(t.pool)
})

/** What a plain scan of the table says, newest first. */
async function truth(template: string, statuses?: OutboxStatus[], tenant?: string) {
  const { rows } = await t.pool.query<{ id: string }>(
    `select id from mailer.email_outbox
      where template = $1 and ($2::text[] is null or status = any($2))
        and ($3::text is null or tenant = $3)
      order by id desc`,
    [template, statuses ?? null, tenant ?? null],
  )
  return rows.map((r) => String(r.id))
}

describe('listing by template (0045_template_index)', () => {
  test('finds the same rows as a scan, in every status, page by page, within filters and tenant scope', async () => {
    const all = await truth('receipt')
    expect(all).toHaveLength(8)
    expect(await allPages(t.db, { template: 'receipt' }, 50, null)).toEqual(all)
    expect(await allPages(t.db, { template: 'receipt' }, 3, null)).toEqual(all)
    expect(
      await allPages(t.db, { template: 'receipt', status: ['pending', 'sent'] }, 2, null),
    ).toEqual(await truth('receipt', ['pending', 'sent']))
    expect(await allPages(t.db, { template: 'receipt' }, 2, 'acme')).toEqual(
      await truth('receipt', undefined, 'acme'),
    )
    expect(await allPages(t.db, { template: 'receipt', tenant: 'acme' }, 50, 'default')).toEqual([])
    expect(await allPages(t.db, { template: 'receipt', status: [] }, 50, null)).toEqual([])
    expect(await allPages(t.db, { template: 'welcome' }, 200, null)).toEqual(await truth('welcome'))
    expect(await allPages(t.db, { template: 'nobody' }, 50, null)).toEqual([])
    const page = await listOutbox(t.db, { template: 'receipt' }, { limit: 3 }, null)
    expect(page.items.map((i) => [i.id, i.template])).toEqual(
      all.slice(0, 3).map((id) => [id, 'receipt']),
    )
    expect(page.next).toBe(all[2]!)
  })

  test('a lookup reads its rows and the backlog, not the kept ones, with or without status; without the index, half the heap', async () => {
    const pages = await outboxHeapPages(t.pool)
    expect(pages).toBeGreaterThan(500)
    for (const filter of [
      { template: 'receipt' },
      { template: 'receipt', status: ['sent' as const] },
      { template: 'nobody' },
    ]) {
      const lookup = (trx: Transaction<Database>) => listOutbox(trx, filter, { limit: 50 }, null)
      const now = await outboxReadsOf(t.db, lookup)
      expect(now.result.items.map((i) => i.id)).toEqual(await truth(filter.template, filter.status))
      // Its rows, each fetched twice (found, then read for the page), and the 63 pending and
      // sending rows checked for the template: a few pages at the table's end.
      expect({ filter, pages: now.heapPages <= 40, seqScans: now.seqScans }).toEqual({
        filter,
        pages: true,
        seqScans: 0,
      })
      const before = await outboxReadsOf(t.db, lookup, { dropIndex: INDEX })
      expect(before.result).toEqual(now.result)
      expect(before.heapPages).toBeGreaterThan(pages / 2)
    }
  })
})
