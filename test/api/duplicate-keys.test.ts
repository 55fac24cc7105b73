// A JSON body naming a key twice in one object is a 400 naming it, not the later value silently taken (a recipient dropped, a wider bulk filter).
import { expect, setDefaultTimeout, test } from 'bun:test'
import { enqueueSql, send } from './support/harness.ts'
import { appOnOwnDatabase } from './support/own-database-app.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const s = appOnOwnDatabase()

const post = (path: string, body: string) =>
  send(s.app, 'POST', path, {
    token: s.tk,
    body,
    headers: { 'content-type': 'application/json' },
  })

const rows = async () =>
  (await s.t.pool.query('select count(*)::int as n from mailer.email_outbox')).rows[0].n as number

test('POST /v1/outbox: a key given twice is a 400 naming its path, however escaped; nothing stored', async () => {
  for (const [body, path] of [
    [
      '{"message":{"to":"ann@example.com","subject":"s","text":"t","to":"bob@example.com"}}',
      'message.to',
    ],
    ['{"message":{"to":"a@example.com","subject":"s","text":"t"},"message":{}}', 'message'],
    [
      '{"message":{"to":[{"address":"a@example.com","name":"A","n\\u0061me":"B"}],"subject":"s","text":"t"}}',
      'message.to.0.name',
    ],
    [
      '{"message":{"to":"a@example.com","subject":"s","text":"t","headers":{"X-A":"1","X-A":"2"}}}',
      'message.headers.X-A',
    ],
  ] as const) {
    const r = await post('/v1/outbox', body)
    const problem = r.body as { type?: string; errors?: { path: string; message: string }[] }
    expect([r.status, problem.type, problem.errors?.map((e) => e.path)]).toEqual([
      400,
      'urn:outbox-mailer:problem:validation_failed',
      [path],
    ])
    expect(problem.errors?.[0]?.message).toStartWith('is given twice')
  }
  expect(await rows()).toBe(0)
  // The same key in two objects, or a quote inside a value, is no repeat.
  const ok = await post(
    '/v1/outbox',
    '{"message":{"to":{"address":"a@example.com","name":"say \\"to\\""},"cc":{"address":"b@example.com"},"subject":"\\"to\\":","text":"t"}}',
  )
  expect(ok.status).toBe(201)
})

test('a bulk action: a filter key given twice is a 400 naming it; nothing acted on', async () => {
  const meant = await enqueueSql(s.t.pool)
  const other = await enqueueSql(s.t.pool)
  const r = await post('/v1/outbox/cancel', `{"filter":{"ids":["${meant}"],"ids":["${other}"]}}`)
  expect([
    r.status,
    (r.body as { errors?: { path: string }[] }).errors?.map((e) => e.path),
  ]).toEqual([400, ['filter.ids']])
  const { rows: status } = await s.t.pool.query(
    'select status from mailer.email_outbox order by id',
  )
  expect(status).toEqual([{ status: 'pending' }, { status: 'pending' }])
})
