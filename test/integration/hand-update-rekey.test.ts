// A hand UPDATE of a row's message or template re-keys the pending rows only (0042): kept failed and cancelled rows cost it nothing, and a retry re-keys the rows it makes pending.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { sql } from 'kysely'
import { requeueMatching } from '../../src/outbox/bulk-requeue.ts'
import { requeueOutbox } from '../../src/outbox/requeue.ts'
import { useTestDb } from '../support/db.ts'
import { enqueue } from '../support/engine.ts'
import { outboxHeapPages, outboxReadsOf } from '../support/outbox-reads.ts'

setDefaultTimeout(60_000)
const t = useTestDb()
const KEPT = 20_000

test('a hand UPDATE of one row’s message reads a few pages, not every kept failed or cancelled templated row', async () => {
  await t.pool.query(
    `insert into mailer.templates (name, subject, text_body, to_addresses, from_address)
     values ('desk', 's', 't', '{rcpt@example.com}', 'Desk <desk@example.com>')`,
  )
  await t.pool.query(
    `insert into mailer.email_outbox (template, source_row, status, last_error_code)
     select 'desk', '{}', case when i % 2 = 0 then 'failed' else 'cancelled' end, 'x'
       from generate_series(1, $1::int) i`,
    [KEPT],
  )
  const id = await enqueue(t)
  await t.pool.query('vacuum analyze mailer.email_outbox')
  const pages = await outboxHeapPages(t.pool)
  const reads = await outboxReadsOf(t.db, async (trx) => {
    await sql`update mailer.email_outbox set message = message || '{"from": "Own <own@example.com>"}' where id = ${id}`.execute(
      trx,
    )
    return (
      await sql<{
        k: string | null
      }>`select sender_key as k from mailer.email_outbox where id = ${id}`.execute(trx)
    ).rows[0]!.k
  })
  expect(reads.result).toBe('own@example.com')
  expect(pages).toBeGreaterThan(100)
  expect(reads.heapPages).toBeLessThanOrEqual(10)
})

test('a failed row whose message was changed by hand is re-keyed when a retry makes it pending, one by one or in bulk', async () => {
  await t.reset()
  const one = await enqueue(t)
  const many = await enqueue(t)
  await t.pool.query(
    `update mailer.email_outbox set status = 'failed', last_error_code = 'x' where id in ($1, $2)`,
    [one, many],
  )
  await t.pool.query(
    `update mailer.email_outbox set message = message || '{"from": "own@example.com"}' where id in ($1, $2)`,
    [one, many],
  )
  await requeueOutbox(t.db, one, null)
  await requeueMatching(t.db, { status: ['failed'] }, null, { limit: 100 })
  const keys = await t.pool.query(
    'select id::text, status, sender_key from mailer.email_outbox order by id',
  )
  expect(keys.rows).toEqual([
    { id: one, status: 'pending', sender_key: 'own@example.com' },
    { id: many, status: 'pending', sender_key: 'own@example.com' },
  ])
})
