// An oldest-first walk whose cursor is a span's end, not a listed row: the next page still waits for a row committed late past it.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { listOutbox } from '../../src/outbox/inspect.ts'
import { useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

const MESSAGE = '{"to":[{"address":"a@example.com"}],"subject":"s","text":"t"}'

const insert = async (tenant: string, q: { query: typeof t.pool.query } = t.pool) =>
  String(
    (
      await q.query<{ id: string }>(
        `insert into mailer.email_outbox (tenant, message) values ($1, $2::jsonb) returning id`,
        [tenant, MESSAGE],
      )
    ).rows[0]!.id,
  )

/**
 * Whether another session of this database (not another run's on the same server) last read the
 * writers a page waits for (settled-horizon.ts).
 */
const pageWaiting = async () => {
  const r = await t.pool.query(
    `select 1 from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid()
        and query like '%virtualtransaction = any%' and query not like '%pg_stat_activity%'`,
  )
  return r.rowCount ? ('waiting' as const) : undefined
}

test("a tenant's page that ends at its span's end, the next page waits for a row of the tenant committed late and lists it, not passing over it", async () => {
  const walk = { limit: 5, order: 'oldest' as const, spanRows: 2 }
  await insert('big')
  await insert('big')
  await insert('big')
  const first = await listOutbox(t.db, { tenant: 'tiny' }, walk, null)
  // Nothing of the tenant in the span of two rows: an empty page, its cursor the span's end.
  expect(first.items).toEqual([])
  expect(first.next).not.toBeNull()
  // The tenant's row takes an id past that cursor in a transaction that stays open while rows
  // with higher ids commit: a span of the next page read now would end past it.
  const client = await t.pool.connect()
  try {
    await client.query('begin')
    const late = await insert('tiny', client)
    await insert('big')
    await insert('big')
    expect(BigInt(late)).toBeGreaterThan(BigInt(first.next!))
    let answered = false
    const next = listOutbox(
      t.db,
      { tenant: 'tiny' },
      { ...walk, after: first.next! },
      null,
    ).finally(() => {
      answered = true
    })
    await pollUntil(async () => (answered ? 'answered' : await pageWaiting()))
    expect(answered).toBe(false)
    await client.query('commit')
    const seen = [...(await next).items.map((i) => i.id)]
    let after = (await next).next
    for (let n = 0; after !== null && n < 10; n++) {
      const page = await listOutbox(t.db, { tenant: 'tiny' }, { ...walk, after }, null)
      seen.push(...page.items.map((i) => i.id))
      after = page.next
    }
    expect(seen).toEqual([late])
  } finally {
    await client.query('rollback').catch(() => {})
    client.release()
  }
})
