// A claim whose templates cannot be loaded gives its templated rows back to try again, uncounted: it never fails them as missing templates.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { monotonicNow, systemClock } from '../../src/clock.ts'
import { claimBatch } from '../../src/outbox/claim.ts'
import { deliverBatch } from '../../src/outbox/deliver.ts'
import { createLeaseDeadlines } from '../../src/outbox/lease-deadlines.ts'
import { createSlots } from '../../src/outbox/slots.ts'
import { databaseAway } from '../support/database-away.ts'
import { useTestDb } from '../support/db.ts'
import { deliveryDeps } from '../support/delivery-deps.ts'
import { rowOf } from '../support/engine.ts'
import { createFakeSender } from '../support/fake-sender.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })

test('the templates’ read failing, a templated row goes back pending and uncounted, and a plain row is sent', async () => {
  await t.pool.query(
    `insert into mailer.templates (name, subject, text_body, to_addresses)
     values ('order', 'Order', 'Total {{total}}', '{"x@example.com"}')`,
  )
  const { rows } = await t.pool.query<{ id: string }>(
    `insert into mailer.email_outbox (message, template, source_row)
     values (null, 'order', '{"total": 3}'::jsonb),
            ('{"to": [{"address": "rcpt@example.com"}], "subject": "Hi", "text": "x"}'::jsonb, null, null)
     returning id`,
  )
  const [templated, plain] = rows.map((r) => r.id) as [string, string]
  const { leases } = await claimBatch(t.db, {
    limit: 2,
    workerId: 'w1',
    leaseSeconds: 30,
    defaultMaxAttempts: 3,
    markStarted: true,
  })
  // The templates are read on d.db: here a database that refuses every connect, while the
  // settlements and last checks reach the real one.
  const away = await databaseAway()
  const deadlines = createLeaseDeadlines(systemClock, 30_000)
  deadlines.confirm(leases, monotonicNow(systemClock))
  const sender = createFakeSender()
  try {
    await deliverBatch(
      deliveryDeps(t.db, { db: away, sender, slots: createSlots(2), deadlines }),
      leases,
    )
  } finally {
    await away.destroy()
  }
  expect(sender.calls.map((m) => m.outboxId)).toEqual([plain])
  expect(await rowOf(t, templated)).toMatchObject({
    status: 'pending',
    attempts: 0,
    send_started_at: null,
  })
})
