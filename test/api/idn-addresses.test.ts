// POST /v1/outbox takes an address whose domain is internationalized (ann@bücher.example), stored as its A-labels; a domain no IDNA name is a 400 naming the field.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { send } from './support/harness.ts'
import { appOnOwnDatabase } from './support/own-database-app.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const s = appOnOwnDatabase()

const enqueue = (message: Record<string, unknown>) =>
  send(s.app, 'POST', '/v1/outbox', {
    token: s.tk,
    body: { message: { subject: 'Hallo', text: 'Grüße', ...message } },
  })

test('each address field takes an IDN domain, stored as its A-labels (punycode); the local part and the name as given', async () => {
  const r = await enqueue({
    to: ['ann@bücher.example', 'Bob <bob@BÜCHER.example>'],
    cc: { address: 'анна@почта.рф', name: 'Анна' },
    bcc: 'x@例え.テスト',
    replyTo: ['"Doe, Jane" <jane@bücher.example> '],
  })
  expect([r.status, (r.body as { errors?: unknown }).errors]).toEqual([201, undefined])
  const { rows } = await s.t.pool.query(
    `select message -> 'to' as to, message -> 'cc' as cc, message -> 'bcc' as bcc,
            message -> 'replyTo' as "replyTo" from mailer.email_outbox`,
  )
  expect(rows).toEqual([
    {
      to: [
        { address: 'ann@xn--bcher-kva.example' },
        { address: 'bob@xn--bcher-kva.example', name: 'Bob' },
      ],
      cc: [{ address: 'анна@xn--80a1acny.xn--p1ai', name: 'Анна' }],
      bcc: [{ address: 'x@xn--r8jz45g.xn--zckzah' }],
      replyTo: [{ address: 'jane@xn--bcher-kva.example', name: 'Doe, Jane' }],
    },
  ])
})

test('a replay under its Idempotency-Key of a message with an IDN domain answers 200 with its id', async () => {
  const body = { message: { to: 'ann@bücher.example', subject: 's', text: 't' } }
  const post = () =>
    send(s.app, 'POST', '/v1/outbox', {
      token: s.tk,
      body,
      headers: { 'idempotency-key': 'idn-1' },
    })
  const first = await post()
  const again = await post()
  expect([first.status, again.status, again.body]).toEqual([201, 200, first.body])
})

test('a domain that is no internationalized domain name is a 400 naming the field; nothing stored', async () => {
  for (const [message, path] of [
    [{ to: 'ann@bü_cher.example' }, 'message.to'],
    [{ to: ['a@example.com', 'ann@bücher..example'] }, 'message.to.1'],
    [{ cc: { address: 'ann@xn--zz.bücher.example' } }, 'message.cc.address'],
    [{ cc: [{ address: 'ann@xn--zz.bücher.example' }] }, 'message.cc.0.address'],
  ] as const) {
    const r = await enqueue(message)
    const problem = r.body as { errors?: { path: string; message: string }[] }
    expect([r.status, problem.errors?.map((e) => e.path)]).toEqual([400, [path]])
  }
  const { rows } = await s.t.pool.query('select count(*)::int as n from mailer.email_outbox')
  expect(rows).toEqual([{ n: 0 }])
})
