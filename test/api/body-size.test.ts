// POST /v1/outbox's body cap against the message's own 4 MB: a message Graph takes is not refused for how its JSON escapes text, and a refusal names the limit and the size.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { MAX_REQUEST_BYTES } from '../../src/transport/graph-message.ts'
import { appOnOwnDatabase } from './support/own-database-app.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const s = appOnOwnDatabase()

/** JSON with every non-ASCII character written \uXXXX, as Python's json.dumps writes it by default. */
const asciiJson = (v: unknown) =>
  JSON.stringify(v).replace(
    /[\u0080-\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  )

const rows = async () =>
  (await s.t.pool.query('select count(*)::int as n from mailer.email_outbox')).rows[0].n as number

test('a Cyrillic text Graph takes (2.75 MB as UTF-8), sent \\u-escaped (8 MB of JSON), is enqueued as sent', async () => {
  const word = 'Здравствуйте '
  const text = word.repeat(110_000)
  // Escaped once and repeated: a regex over 1.4 M characters took seconds on a loaded machine.
  const body = asciiJson({
    message: { to: 'ada@example.com', subject: 'Отчёт', text: '' },
  }).replace('"text":""', `"text":"${asciiJson(word).slice(1, -1).repeat(110_000)}"`)
  // The request Graph gets holds the text as UTF-8: well within its 4 MB; the body is near twice that.
  expect(Buffer.byteLength(text)).toBeLessThan(MAX_REQUEST_BYTES * 0.7)
  expect(body.length).toBeGreaterThan(MAX_REQUEST_BYTES * 1.9)
  // Not through send(): its document check parsed the 8 MB again and matched it (the document's
  // 201 of this route is contract.test.ts's). The text is compared in Postgres, not read back.
  const res = await s.app.request('/v1/outbox', {
    method: 'POST',
    headers: { authorization: `Bearer ${s.tk}`, 'content-type': 'application/json' },
    body,
  })
  const answer = (await res.json()) as { id?: string; detail?: string }
  expect([res.status, answer.detail]).toEqual([201, undefined])
  const stored = await s.t.pool.query(
    `select id::text, message ->> 'text' = repeat($1, 110000) as same from mailer.email_outbox`,
    [word],
  )
  expect(stored.rows).toEqual([{ id: answer.id, same: true }])
  // Building, parsing and storing 8 MB: ~3.5 s quiet, 24 s at load 40, past 30 s in a CI run. The
  // bound only ends a run left waiting: the 201 and the stored text are what the test checks.
}, 120_000)

test('a body past the cap is a 413 naming the limit and the body’s size; nothing stored', async () => {
  // Past any cap a message Graph takes needs, however escaped: its text is 16 MB of ASCII.
  const body = JSON.stringify({
    message: { to: 'ada@example.com', subject: 's', text: 'x'.repeat(4 * MAX_REQUEST_BYTES) },
  })
  // Not through send(): its document check would parse and match 16 MB for nothing.
  const res = await s.app.request('/v1/outbox', {
    method: 'POST',
    headers: {
      authorization: `Bearer ${s.tk}`,
      'content-type': 'application/json',
      'content-length': String(body.length),
    },
    body,
  })
  const problem = (await res.json()) as { type?: string; detail?: string }
  expect([res.status, problem.type]).toEqual([413, 'urn:outbox-mailer:problem:payload_too_large'])
  expect(problem.detail).toContain(`the body is ${body.length} bytes`)
  expect(problem.detail).toMatch(/POST \/v1\/outbox reads at most \d+ bytes/)
  expect(await rows()).toBe(0)
})
