// A tenant's failed and cancelled rows are listed through an index of their own: a page reads that tenant's entries, never every tenant's failed rows.
import { beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import type { Transaction } from 'kysely'
import type { Database, OutboxStatus } from '../../src/db/schema.ts'
import { type ListOrder, listOutbox } from '../../src/outbox/inspect.ts'
import { useTestDb } from '../support/db.ts'
import { outboxReadsOf } from '../support/outbox-reads.ts'
import { insertRowsInStates } from '../support/rows-in-states.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
beforeAll(async () => {
  // 3,000 rows: every other one failed, one in 7 cancelled, the rest sent; tenant `tiny` holds 6,
  // among them 3 failed and 2 cancelled, the oldest and newest of each far apart.
  await insertRowsInStates(
    t.pool,
    `select case when g in (4, 14, 700, 1500, 2996, 2997) then 'tiny' else 'big' end as tenant,
            case when g % 2 = 0 then 'failed' when g % 7 = 0 then 'cancelled' else 'sent' end as status,
            null::text as correlation_id, g as k
       from generate_series(1, 3000) g`,
    's.k',
  )
  await t.pool.query(
    `update mailer.email_outbox set status = 'cancelled' where id in (1500, 2997);
     update mailer.email_outbox set status = 'sent' where id = 14;
     analyze mailer.email_outbox`,
  )
})

const STATUSES: OutboxStatus[][] = [['failed'], ['cancelled'], ['failed', 'cancelled']]

test.each(['newest', 'oldest'] as const)(
  "a tenant's key lists its failed and cancelled rows, page by page, as a scan finds them, order=%s",
  async (order: ListOrder) => {
    for (const status of STATUSES) {
      const { rows } = await t.pool.query<{ id: string }>(
        `select id from mailer.email_outbox where tenant = 'tiny' and status = any($1)
          order by id ${order === 'oldest' ? 'asc' : 'desc'}`,
        [status],
      )
      const ids: string[] = []
      let after: string | undefined
      for (let pages = 0; pages < 20; pages++) {
        const page = await listOutbox(t.db, { status }, { limit: 2, order, after }, 'tiny')
        ids.push(...page.items.map((i) => i.id))
        if (page.next === null) break
        after = page.next
      }
      expect({ status, ids }).toEqual({ status, ids: rows.map((r) => String(r.id)) })
    }
  },
)

test("a tenant's page of failed rows reads its own entries, not the 1,500 failed rows of another tenant", async () => {
  const read: { status: OutboxStatus[]; order: ListOrder; rows: number }[] = []
  for (const status of STATUSES) {
    for (const order of ['newest', 'oldest'] as const) {
      const page = (trx: Transaction<Database>) =>
        listOutbox(trx, { status }, { limit: 50, order }, 'tiny')
      const r = await outboxReadsOf(t.db, page)
      read.push({ status, order, rows: r.rowsRead })
    }
  }
  // Its 5 rows, and for oldest first the highest id (one entry of email_outbox_pkey).
  expect(read.filter((r) => r.rows > 20)).toEqual([])
})
