// A source row nested as deep as jsonb allows, holding a number JS would change: its claim parses, its batch is sent.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { useTestDb } from '../support/db.ts'
import { allIn, createTestEngine, type TestEngine } from '../support/engine.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(60_000)

const t = useTestDb({ resetEach: true })
let engine: TestEngine | null = null
afterEach(async () => {
  await engine?.stop()
  engine = null
})

const message = JSON.stringify({ to: [{ address: 'rcpt@example.com' }], subject: 'Hi', text: 'x' })

test('a trigger row whose source row nests 6,000 deep with 1.50 inside: it and the rows claimed with it are sent', async () => {
  await t.pool.query(
    `insert into mailer.templates (name, subject, text_body, to_addresses)
     values ('deep', 'Order', 'Total {{total}}', '{"x@example.com"}')`,
  )
  // Claimed together (inserted before the worker starts): a plain row, the deep one, a plain row.
  // A json column of the application's table reaches source_row as it is: jsonb takes this depth.
  const { rows } = await t.pool.query<{ id: string }>(
    `insert into mailer.email_outbox (message, template, source_row)
     values ($1::jsonb, null, null),
            (null, 'deep', jsonb_build_object('total', 12.50,
               'doc', (repeat('[', 6000) || '1.50' || repeat(']', 6000))::jsonb)),
            ($1::jsonb, null, null)
     returning id`,
    [message],
  )
  engine = createTestEngine(t)
  await engine.start()
  // The claim's rows were leased, then its text failed to parse (RangeError: the stack): none was
  // sent, and each lease ran out to a reclaim that claimed them again, until max attempts failed them.
  await allIn(t, 'sent', 3)
  expect(engine.sender.calls.map((c) => c.outboxId).sort()).toEqual(rows.map((r) => r.id).sort())
  expect(engine.sender.calls.find((c) => c.outboxId === rows[1]!.id)?.text).toBe('Total 12.50')
})
