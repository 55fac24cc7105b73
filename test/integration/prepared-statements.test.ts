// Marked statements are prepared once per connection, and a connection that loses them costs no query.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { sql } from 'kysely'
import { type DbHandle, openDb } from '../../src/db/open.ts'
import { createLogger } from '../../src/log.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import { markSent } from '../../src/outbox/mark-sent.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()

// One connection, so every statement below runs where the previous ones were prepared.
function openOne(): { h: DbHandle; warnings: string[] } {
  const warnings: string[] = []
  const log = createLogger('warn', (line) => warnings.push(JSON.parse(line).msg))
  return { h: openDb({ name: 'prepared', url: t.url, log, maxConnections: 1 }), warnings }
}

const prepared = async (h: DbHandle) =>
  (
    await sql<{ name: string }>`select name from pg_prepared_statements order by name`.execute(h.db)
  ).rows.map((r) => r.name)

const double = (h: DbHandle, n: number) =>
  sql<{ v: number }>`/* prepared test_double */ select ${n}::int * 2 as v`.execute(h.db)

test('a marked statement is prepared once per connection; unmarked ones are not', async () => {
  const { h, warnings } = openOne()
  try {
    expect((await double(h, 2)).rows[0]!.v).toBe(4)
    expect((await double(h, 5)).rows[0]!.v).toBe(10)
    await claimBatch(h.db, {
      limit: 1,
      workerId: 'w',
      leaseSeconds: 60,
      defaultMaxAttempts: 8,
    })
    await sql`select 1`.execute(h.db)
    expect(await prepared(h)).toEqual(['outbox_claim_unflushed', 'test_double'])
    expect(warnings).toEqual([])
  } finally {
    await h.close()
  }
})

test('the settlement of sent rows is prepared once per connection and then runs its generic plan', async () => {
  const { h, warnings } = openOne()
  try {
    // Seven settlements: Postgres plans a prepared statement's first five calls for their values,
    // then keeps one generic plan; unnamed, every call was parsed, analysed and planned again.
    for (let i = 0; i < 7; i++) {
      const id = await enqueue(t)
      const [lease] = (
        await claimBatch(h.db, {
          limit: 1,
          workerId: 'w',
          leaseSeconds: 60,
          defaultMaxAttempts: 8,
          markStarted: true,
        })
      ).leases
      expect(lease?.id).toBe(id)
      const settled = await markSent(
        h.db,
        [{ id, token: lease!.token, settlement: { kind: 'sent' }, startedAt: new Date() }],
        'w',
      )
      expect([...settled.sent]).toEqual([id])
    }
    const r = await sql<{ generic_plans: string }>`
      select generic_plans from pg_prepared_statements where name = 'outbox_mark_sent'`.execute(
      h.db,
    )
    expect(r.rows).toHaveLength(1)
    expect(Number(r.rows[0]!.generic_plans)).toBeGreaterThan(0)
    expect(warnings).toEqual([])
  } finally {
    await h.close()
  }
})

test('a connection that loses its statements (a transaction pooler) goes unnamed without failing a query', async () => {
  const { h, warnings } = openOne()
  try {
    expect((await double(h, 1)).rows[0]!.v).toBe(2)
    // What a pooler does to a named statement: the next Bind lands where it was never prepared.
    await sql`deallocate all`.execute(h.db)
    expect((await double(h, 3)).rows[0]!.v).toBe(6)
    expect(warnings).toHaveLength(1)
    expect(warnings[0]).toContain('does not keep prepared statements')
    // From then on, nothing is prepared and nothing more is logged.
    expect((await double(h, 4)).rows[0]!.v).toBe(8)
    await sql`/* prepared test_other */ select 1 as v`.execute(h.db)
    expect(await prepared(h)).toEqual([])
    expect(warnings).toHaveLength(1)
  } finally {
    await h.close()
  }
})

test('any other error of a marked statement reaches the caller, and the statement stays prepared', async () => {
  const { h, warnings } = openOne()
  try {
    const divide = (n: number) =>
      sql`/* prepared test_divide */ select 1 / ${n}::int as v`.execute(h.db)
    await expect(divide(0)).rejects.toMatchObject({ code: '22012' })
    expect((await divide(1)).rows).toEqual([{ v: 1 }])
    expect(await prepared(h)).toEqual(['test_divide'])
    expect(warnings).toEqual([])
  } finally {
    await h.close()
  }
})
