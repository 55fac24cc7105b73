// A list page that walks the primary key reads one span of it: short pages with a cursor, never the table.
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import type { Kysely, Transaction } from 'kysely'
import type { Database } from '../../src/db/schema.ts'
import { type ListOrder, listOutbox } from '../../src/outbox/inspect.ts'
import type { OutboxFilter } from '../../src/outbox/outbox-filter.ts'
import { useTestDb } from '../support/db.ts'
import { outboxHeapPages, outboxReadsOf } from '../support/outbox-reads.ts'
import { insertRowsInStates } from '../support/rows-in-states.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const SPAN = 100

const t = useTestDb()
beforeAll(async () => {
  // 3,000 rows, one created a minute in id order (sent a minute later): the oldest 1,000 sent,
  // the rest a pending backlog; tenant `tiny` holds 5 of them, 3 among the oldest and 2 far apart.
  await insertRowsInStates(
    t.pool,
    `select case when g in (2, 3, 40, 1500, 2500) then 'tiny' else 'big' end as tenant,
            case when g <= 1000 then 'sent' else 'pending' end as status,
            null::text as correlation_id, g as k
       from generate_series(1, 3000) g`,
    's.k',
  )
  await t.pool.query(
    `begin;
     set local synchronous_commit = on;
     update mailer.email_outbox
        set created_at = timestamptz '2030-01-01' + id * interval '1 minute',
            sent_at = case when status = 'sent' then timestamptz '2030-01-01' + (id + 1) * interval '1 minute' end;
     commit`,
  )
})

/** What a plain scan of the table says, in the order's direction. */
async function truth(where: string, order: ListOrder): Promise<string[]> {
  const { rows } = await t.pool.query<{ id: string }>(
    `select id from mailer.email_outbox where ${where}
      order by id ${order === 'oldest' ? 'asc' : 'desc'}`,
  )
  return rows.map((r) => String(r.id))
}

interface Walk {
  ids: string[]
  pages: number
  emptyPages: number
}

/** Every page of `f` in `order`, SPAN rows read a page; `between` runs after each page. */
async function walk(
  db: Kysely<Database>,
  f: OutboxFilter,
  order: ListOrder,
  limit: number,
  between: () => Promise<void> = async () => {},
): Promise<Walk> {
  const out: Walk = { ids: [], pages: 0, emptyPages: 0 }
  let after: string | undefined
  for (; out.pages < 1000; ) {
    const page = await listOutbox(db, f, { limit, order, after, spanRows: SPAN }, null)
    out.pages++
    if (page.items.length === 0) out.emptyPages++
    out.ids.push(...page.items.map((i) => i.id))
    if (page.next === null) return out
    after = page.next
    await between()
  }
  throw new Error('the cursor never ended')
}

const SHAPES: [string, OutboxFilter, string][] = [
  ['no filter', {}, 'true'],
  ['a tenant of 5 rows', { tenant: 'tiny' }, `tenant = 'tiny'`],
  ['status=sent under a pending backlog', { status: ['sent'] }, `status = 'sent'`],
  [
    'a created window',
    { createdFrom: '2030-01-01T10:00:00Z', createdTo: '2030-01-01T12:00:00Z' },
    `created_at >= '2030-01-01T10:00:00Z' and created_at < '2030-01-01T12:00:00Z'`,
  ],
  [
    'a sent window with a tenant',
    { sentFrom: '2030-01-01T00:00:00Z', sentTo: '2030-01-01T01:00:00Z', tenant: 'tiny' },
    `sent_at >= '2030-01-01T00:00:00Z' and sent_at < '2030-01-01T01:00:00Z' and tenant = 'tiny'`,
  ],
]

describe('a page walking the primary key reads one span', () => {
  // A test a shape and order: the walks of all five shapes in one (some 800 pages, a statement
  // or more each) took 15-30 s at load 20-30 and outlasted 30 s in CI. A walk waits on nothing but
  // its own statements, so its bound is one for their count on a loaded machine, not for a wait.
  test.each(
    (['newest', 'oldest'] as const).flatMap((order) =>
      SHAPES.map(([label, f, where]) => [order, label, f, where] as const),
    ),
  )(
    'every shape lists what a scan finds, in order, none twice, page by page, order=%s: %s',
    async (order, label, f, where) => {
      const all = await truth(where, order)
      for (const limit of [7, 50]) {
        const got = await walk(t.db, f, order, limit)
        expect({ label, limit, ids: got.ids }).toEqual({ label, limit, ids: all })
      }
    },
    120_000,
  )

  test('the first page of a tenant whose rows are older than the span is empty, with a cursor; the walk reads a span a page', async () => {
    const first = await listOutbox(t.db, { tenant: 'tiny' }, { limit: 50, spanRows: SPAN }, null)
    expect(first.items).toEqual([])
    // The span is the top's block of SPAN / 2 ids and the next one's: the cursor a block boundary.
    expect(first.next).toBe(String(3000 - SPAN / 2))
    const got = await walk(t.db, { tenant: 'tiny' }, 'newest', 50)
    expect(got.ids).toEqual(['2500', '1500', '40', '3', '2'])
    expect(got.pages).toBe(1 + 3000 / SPAN)
  })

  test('a page reads its span of the heap, not the table', async () => {
    const pages = await outboxHeapPages(t.pool)
    expect(pages).toBeGreaterThan(20)
    for (const f of SHAPES.map(([, f]) => f)) {
      const page = (trx: Transaction<Database>) =>
        listOutbox(trx, f, { limit: 50, after: '2000', spanRows: SPAN }, null)
      const r = await outboxReadsOf(t.db, page)
      expect({ f, seqScans: r.seqScans, partOfTable: r.heapPages < pages / 4 }).toEqual({
        f,
        seqScans: 0,
        partOfTable: true,
      })
    }
  })

  test.each(['newest', 'oldest'] as const)(
    'rows inserted and rows changing between pages: none twice, none that matched throughout skipped, order=%s',
    async (order) => {
      const before = new Set(await truth(`tenant = 'tiny'`, order))
      let n = 0
      const got = await walk(t.db, { tenant: 'tiny' }, order, 1, async () => {
        if (++n > 3) return
        // A new row of the tenant and one of another, and a `big` row taken into the tenant.
        await t.pool.query(
          `insert into mailer.email_outbox (tenant, message) values ('tiny', '{"to":[{"address":"a@example.com"}],"subject":"s","text":"t"}'::jsonb), ('big', '{"to":[{"address":"a@example.com"}],"subject":"s","text":"t"}'::jsonb)`,
        )
        if (n === 3)
          await t.pool.query(`update mailer.email_outbox set tenant = 'tiny' where id = 1000`)
      })
      expect(new Set(got.ids).size).toBe(got.ids.length)
      expect([...before].filter((id) => !got.ids.includes(id))).toEqual([])
      const after = await truth(`tenant = 'tiny'`, order)
      expect(got.ids.filter((id) => !after.includes(id))).toEqual([])
      // In the walk's order: each id past the one before it.
      const sorted = [...got.ids].sort(
        (a, b) => (order === 'oldest' ? 1 : -1) * (Number(a) - Number(b)),
      )
      expect(got.ids).toEqual(sorted)
      if (order === 'oldest') {
        // Rows inserted meanwhile are reached at the walk's end.
        expect(got.ids.filter((id) => !before.has(id)).length).toBeGreaterThan(0)
      }
      await t.pool.query(
        `delete from mailer.email_outbox where id > 3000; update mailer.email_outbox set tenant = 'big' where id = 1000`,
      )
    },
  )
})
