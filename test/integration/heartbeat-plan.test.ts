// The heartbeat tick's plan with every row of the outbox sending: it looks its leases up, never reading every sending row.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { Kysely, PostgresDialect } from 'kysely'
import type { Database } from '../../src/db/schema.ts'
import { extendReachableLeases } from '../../src/outbox/heartbeat.ts'
import { useTestDb } from '../support/db.ts'
import { testPool } from '../support/test-pool.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()

test('a heartbeat of 200 leases among 10,000 rows sending reads them by key, not by a scan of every sending row', async () => {
  // A burst claimed by 50 workers (bench/heartbeat-beat.ts): the table holds little else, so the
  // planner, costing 200 key lookups above one pass over the table, hashed every row, twice.
  await t.pool.query(
    `insert into mailer.email_outbox (message, status, attempts, lease_owner, lease_token, lease_expires_at)
     select jsonb_build_object('to', 'a@example.com', 'subject', 's', 'text', 't'), 'sending', 1,
            'k' || lpad(((g - 1) / 200)::text, 2, '0'), gen_random_uuid(), now() + interval '1 hour'
       from generate_series(1, 10000) g`,
  )
  await t.pool.query('vacuum (analyze) mailer.email_outbox')
  const { rows: held } = await t.pool.query<{ id: string; token: string }>(
    `select id::text, lease_token::text as token from mailer.email_outbox where lease_owner = 'k00'`,
  )
  const notices: string[] = []
  // Ended (db.destroy) before useTestDb's drop, which would otherwise meet its goodbye half-way.
  const pool = testPool({ connectionString: t.url, max: 1 })
  pool.on('connect', (c) => {
    c.on('notice', (n) => notices.push(n.message ?? ''))
  })
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) })
  try {
    await pool.query(
      `load 'auto_explain'; set auto_explain.log_min_duration = 0; set auto_explain.log_level = notice; set client_min_messages = notice`,
    )
    const worker = { id: 'plan-host:1:0a0b0c', host: 'plan-host', pid: 1, version: 'test' }
    const reached = await extendReachableLeases(db, { ...worker, leaseKey: 'k00' }, held, 60)
    expect(reached.extended.size).toBe(200)
    const plan = notices.find((n) => n.includes('extended as')) ?? ''
    expect(plan).toContain('Update on email_outbox')
    expect(plan.match(/Seq Scan on email_outbox/g) ?? []).toEqual([])
  } finally {
    await db.destroy()
  }
})
