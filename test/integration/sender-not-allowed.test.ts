// A row written through SQL naming a sender MAIL_FROM_ALLOWED does not list fails sender_not_allowed at send, and is not sent; listed senders and MAIL_FROM go.
import { afterEach, expect, setDefaultTimeout, test } from 'bun:test'
import { useTestDb } from '../support/db.ts'
import { allIn, createTestEngine, enqueue, rowOf, type TestEngine } from '../support/engine.ts'
import { pollUntil } from '../support/events.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
let engine: TestEngine | null = null
afterEach(async () => {
  await engine?.stop()
  engine = null
})

/** Until `n` rows are sent or failed (polled, within pollUntil's bound). */
const settled = (n: number) =>
  pollUntil(async () => {
    const r = await t.pool.query<{ n: number }>(
      `select count(*)::int as n from mailer.email_outbox where status in ('sent', 'failed')`,
    )
    return r.rows[0]!.n === n ? true : undefined
  })

const message = (from?: string) => ({
  ...(from === undefined ? {} : { from }),
  to: 'rcpt@example.com',
  subject: 'Hello',
  text: 'Hi there',
})

test('with MAIL_FROM_ALLOWED set, a row naming another mailbox fails sender_not_allowed unsent; a listed one (any case) and one naming none are sent', async () => {
  const ceo = await enqueue(t, message('Boss <ceo@acme.example>'))
  const listed = await enqueue(t, message('NoReply@Acme.example'))
  const own = await enqueue(t, message())
  await t.pool.query(
    `insert into mailer.templates (name, subject, text_body, to_addresses, from_address)
     values ('spoof', 'Hi', 'x', '{"rcpt@example.com"}', '{{sender}}')`,
  )
  const { rows } = await t.pool.query<{ id: string }>(
    `insert into mailer.email_outbox (message, template, source_row)
     values (null, 'spoof', '{"sender": "ceo@acme.example"}'::jsonb) returning id`,
  )
  const templated = rows[0]!.id
  engine = createTestEngine(t, {
    deps: { allowedSenders: new Set(['noreply@acme.example']) },
  })
  await engine.start()
  await settled(4)
  expect(engine.sender.calls.map((m) => m.outboxId).sort()).toEqual([listed, own].sort())
  for (const id of [ceo, templated]) {
    expect([id, await rowOf(t, id)]).toMatchObject([
      id,
      {
        status: 'failed',
        last_error_code: 'sender_not_allowed',
        last_error: 'message.from names a mailbox MAIL_FROM_ALLOWED does not list: not sent',
        send_started_at: null,
      },
    ])
  }
})

test('without MAIL_FROM_ALLOWED, a row may name any sender (today’s behaviour)', async () => {
  const ceo = await enqueue(t, message('ceo@acme.example'))
  engine = createTestEngine(t)
  await engine.start()
  await allIn(t, 'sent', 1)
  expect(engine.sender.calls.map((m) => [m.outboxId, m.from.address])).toEqual([
    [ceo, 'ceo@acme.example'],
  ])
})
