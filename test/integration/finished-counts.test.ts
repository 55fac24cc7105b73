// Counting finished rows and finding failed ones read indexes, not the heap that keeps every row (0009).
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Transaction } from 'kysely'
import type { Database } from '../../src/db/schema.ts'
import { countRequeueable } from '../../src/outbox/bulk-requeue.ts'
import { listOutbox } from '../../src/outbox/inspect.ts'
import { recentFailures } from '../../src/outbox/recent-failures.ts'
import { settledCounts } from '../../src/outbox/settled-counts.ts'
import { ROOT } from '../deploy/deploy-files.ts'
import { useTestDb } from '../support/db.ts'
import { outboxHeapPages, outboxReadsOf } from '../support/outbox-reads.ts'
import { insertRowsInStates } from '../support/rows-in-states.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
beforeAll(async () => {
  // 20,000 sent, 300 failed, 200 cancelled, 50 pending, 10 sending; a tenant's share of each. The
  // rows not sent came in the middle, as on a bad day between two good months.
  await insertRowsInStates(
    t.pool,
    `select case when g % 10 = 0 then 'acme' else 'default' end as tenant, s.status,
            null::text as correlation_id, g
       from (values ('sent', 20000), ('failed', 300), ('cancelled', 200), ('pending', 50),
                    ('sending', 10)) s(status, n),
            generate_series(1, s.n) g`,
    `case when s.status <> 'sent' then 1 when s.g % 2 = 0 then 0 else 2 end, random()`,
  )
})

async function truth(tenant: string | null) {
  const { rows } = await t.pool.query<{ status: string; n: number }>(
    `select status, count(*)::int as n from mailer.email_outbox
      where $1::text is null or tenant = $1 group by status`,
    [tenant],
  )
  const by = Object.fromEntries(rows.map((r) => [r.status, r.n]))
  return { sent: by.sent ?? 0, failed: by.failed ?? 0, cancelled: by.cancelled ?? 0 }
}

const INDEX = 'mailer.email_outbox_failed_cancelled_idx'
/** Before 0009: without 0085's index either, which holds the same rows by tenant. */
const BEFORE_0009 = [INDEX, 'mailer.email_outbox_tenant_failed_cancelled_idx']
/** The heap reads of `read`; with `dropIndex`, as before 0009. */
const heapReadBy = <T>(read: (trx: Transaction<Database>) => Promise<T>, dropIndex = false) =>
  outboxReadsOf(t.db, read, dropIndex ? { dropIndex: BEFORE_0009 } : {})

/** The index of finished rows by tenant that the deploy guide (step 7, for your DBA) says to add. */
function documentedTenantIndex(): string {
  const guide = readFileSync(join(ROOT, 'deploy/README.md'), 'utf8')
  const block = /An index you may add[\s\S]*?```sql\n([\s\S]*?)```/.exec(guide)?.[1]
  if (!block) throw new Error('deploy/README.md step 7 has no tenant index block')
  return block
}

describe('finished rows (0009_failed_cancelled_index)', () => {
  test('counts are exact, for every tenant and for one', async () => {
    expect(await settledCounts(t.db, null)).toEqual(await truth(null))
    expect(await truth(null)).toEqual({ sent: 20_000, failed: 300, cancelled: 200 })
    expect(await settledCounts(t.db, 'acme')).toEqual(await truth('acme'))
    expect(await settledCounts(t.db, 'nobody')).toEqual({ sent: 0, failed: 0, cancelled: 0 })
  })

  test('counting every tenant reads indexes only; without the index, the whole heap', async () => {
    const pages = await outboxHeapPages(t.pool)
    expect(pages).toBeGreaterThan(500)
    const now = await heapReadBy((trx) => settledCounts(trx, null))
    expect(now.result).toEqual(await truth(null))
    // Counted with the heap: its visibility map's one page, read once by each of the five scans.
    expect(now.heapPages).toBeLessThanOrEqual(5)
    expect(now.seqScans).toBe(0)
    const before = await heapReadBy((trx) => settledCounts(trx, null), true)
    expect(before.result).toEqual(await truth(null))
    expect(before.heapPages).toBeGreaterThan(pages / 2)
    expect(before.seqScans).toBeGreaterThan(0)
  })

  test('one tenant’s counts (a tenant-confined token’s /v1/stats) come right from the heap, and from the deploy guide’s index alone once added', async () => {
    const pages = await outboxHeapPages(t.pool)
    const counts = (trx: Transaction<Database>) => settledCounts(trx, 'acme')
    const without = await heapReadBy(counts)
    expect(without.result).toEqual(await truth('acme'))
    expect(without.result).toEqual({ sent: 2_000, failed: 30, cancelled: 20 })
    // What the index is for: without it, tenant is in no index and every row is read.
    expect(without.heapPages).toBeGreaterThan(pages / 2)
    const statement = documentedTenantIndex()
    // As a DBA runs it (outside a transaction block), and again: `if not exists` makes that a no-op.
    try {
      await t.pool.query(statement)
      await t.pool.query(statement)
      const { rows } = await t.pool.query(
        `select indisvalid as valid from pg_index
          where indexrelid = 'mailer.email_outbox_finished_tenant_idx'::regclass`,
      )
      expect(rows).toEqual([{ valid: true }])
      const indexed = await heapReadBy(counts)
      expect(indexed.result).toEqual(without.result)
      expect(indexed.seqScans).toBe(0)
      // The visibility map's page: an index-only scan of the tenant's entries.
      expect(indexed.heapPages).toBeLessThanOrEqual(5)
      expect(await settledCounts(t.db, 'nobody')).toEqual({ sent: 0, failed: 0, cancelled: 0 })
    } finally {
      await t.pool.query('drop index if exists mailer.email_outbox_finished_tenant_idx')
    }
  })

  test('the newest failed rows are found without walking the sent ones', async () => {
    const list = (trx: Transaction<Database>) =>
      listOutbox(trx, { status: ['failed'] }, { limit: 50 }, null)
    const now = await heapReadBy(list)
    expect(now.result.items).toHaveLength(50)
    expect(now.result.items.every((r) => r.status === 'failed')).toBe(true)
    const ids = now.result.items.map((r) => BigInt(r.id))
    expect(ids).toEqual([...ids].sort((a, b) => (a > b ? -1 : a < b ? 1 : 0)))
    // One heap page per row listed at most (and the one more that says "more rows follow").
    expect(now.heapPages).toBeLessThanOrEqual(51)
    const before = await heapReadBy(list, true)
    expect(before.result.items.map((r) => r.id)).toEqual(now.result.items.map((r) => r.id))
    expect(before.heapPages).toBeGreaterThan(200)
  })

  test('status’s recent failures take the newest failed rows and their codes from the index alone (0025)', async () => {
    const read = (trx: Transaction<Database>) =>
      recentFailures(trx, { hours: 24, limit: 5, scanLimit: 10_000 })
    const now = await heapReadBy(read)
    // No attempt rows in this fixture: none failed within the window, and all 300 were looked at.
    expect(now.result).toEqual({ total: 0, byCode: [], complete: true })
    // The visibility map's page only, not the failed rows' own pages (about 15): a status run is a
    // new connection, and each page it touches first costs it most (BENCHMARKS.md, round 26).
    expect(now.heapPages).toBeLessThanOrEqual(2)
  })

  test('status’s recent failures are complete exactly when every failed row was looked at: as many as the bound is complete, one more is not', async () => {
    // The fixture's 300 failed rows: a bound of 300 looks at all of them, one of 299 leaves one out.
    const at = (scanLimit: number) =>
      recentFailures(t.db, { hours: 24, limit: 5, scanLimit }).then((r) => r.complete)
    expect([await at(300), await at(299)]).toEqual([true, false])
  })

  test('counting what a bulk retry would requeue reads the failed and cancelled rows only', async () => {
    const count = (trx: Transaction<Database>) => countRequeueable(trx, {}, null)
    const now = await heapReadBy(count)
    expect(now.result).toBe(500)
    // Their heap pages (for expires_at): 500 rows together on about 25 pages, plus the map's.
    expect(now.heapPages).toBeLessThanOrEqual(100)
    const before = await heapReadBy(count, true)
    expect(before.result).toBe(500)
    expect(before.heapPages).toBeGreaterThan((await outboxHeapPages(t.pool)) / 2)
  })
})
