// A replay under its Idempotency-Key is the same request however its JSON writes it: keys in another order, an IDN domain in Unicode or in A-labels, a key's name \u-escaped.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { appOnOwnDatabase } from './support/own-database-app.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const s = appOnOwnDatabase()

const post = async (body: string) => {
  const res = await s.app.request('/v1/outbox', {
    method: 'POST',
    headers: {
      authorization: `Bearer ${s.tk}`,
      'content-type': 'application/json',
      'idempotency-key': 'written-otherwise',
    },
    body,
  })
  return [res.status, await res.json()] as const
}

test('the IDN domain in Unicode, then in A-labels, upper case, keys reordered or \\u-escaped: one row, 200 with its id', async () => {
  const [created, first] = await post(
    '{"message":{"to":"Ann <ann@bücher.example>","subject":"s","text":"t"}}',
  )
  expect(created).toBe(201)
  const replays = [
    '{"message":{"text":"t","subject":"s","to":"Ann <ann@xn--bcher-kva.example>"}}',
    '{"message":{"to":"Ann <ann@BÜCHER.example>","subject":"s","text":"t"}}',
    '{"message":{"t\\u006f":"Ann <ann@b\\u00fccher.example>","subject":"s","text":"t"}}',
  ]
  const answers = []
  for (const body of replays) answers.push(await post(body))
  expect(answers).toEqual(replays.map(() => [200, first]))
  const { rows } = await s.t.pool.query(`select message -> 'to' as "to" from mailer.email_outbox`)
  expect(rows).toHaveLength(1)
  expect(JSON.stringify(rows[0].to)).toContain('xn--bcher-kva.example')
})

test('a key given twice in a replay is the 400 naming it, not a 200 for the first request', async () => {
  expect((await post('{"message":{"to":"ann@bücher.example","subject":"s","text":"t"}}'))[0]).toBe(
    201,
  )
  const [status, problem] = await post(
    '{"message":{"to":"ann@bücher.example","subject":"s","text":"t","to":"bob@example.com"}}',
  )
  expect([status, (problem as { errors?: { path: string }[] }).errors?.map((e) => e.path)]).toEqual(
    [400, ['message.to']],
  )
})
