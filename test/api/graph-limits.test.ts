// POST /v1/outbox refuses, naming the field, a message under its body limit that Graph's sendMail could never take.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { MAX_REQUEST_BYTES } from '../../src/transport/graph-message.ts'
import { send } from './support/harness.ts'
import { appOnOwnDatabase } from './support/own-database-app.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const s = appOnOwnDatabase()

type Refusal = { status: number; type?: string; errors?: { path: string; message: string }[] }

/** POSTs `message` and answers the status, problem type and errors; asserts nothing was stored. */
async function refusal(message: object): Promise<Refusal> {
  const r = await send(s.app, 'POST', '/v1/outbox', { token: s.tk, body: { message } })
  const problem = r.body as Omit<Refusal, 'status'>
  const { rows } = await s.t.pool.query('select count(*)::int as n from mailer.email_outbox')
  expect(rows).toEqual([{ n: 0 }])
  return { status: r.status, type: problem.type, errors: problem.errors }
}

test('a body under 4 MiB whose sendMail request would pass 4 MB is a 400 naming message, nothing stored', async () => {
  // 500 recipients as bare strings: each becomes {"emailAddress":{"address":…}} in the request,
  // about 30 bytes more, so the request passes Graph's limit while the body is within the API's.
  const to = Array.from({ length: 500 }, (_, i) => `r${i}@example.com`)
  const html = 'h'.repeat(MAX_REQUEST_BYTES - 16 * 1024)
  const message = { to, subject: 's', html }
  expect(Buffer.byteLength(JSON.stringify({ message }))).toBeLessThan(MAX_REQUEST_BYTES)
  const r = await refusal(message)
  expect([r.status, r.type, r.errors?.map((e) => e.path)]).toEqual([
    400,
    'urn:outbox-mailer:problem:validation_failed',
    ['message'],
  ])
  expect(r.errors?.[0]?.message).toStartWith('is too large for one Graph sendMail request: ')
})

test('X- headers over 256 KB together are a 400 naming message.headers, nothing stored', async () => {
  const headers = { 'X-A': 'a'.repeat(131_072), 'X-B': 'b'.repeat(131_072) }
  const r = await refusal({ to: 'a@example.com', subject: 's', text: 't', headers })
  expect([r.status, r.type, r.errors]).toEqual([
    400,
    'urn:outbox-mailer:problem:validation_failed',
    [
      {
        path: 'message.headers',
        message:
          'must total at most 262144 bytes as "Name: value" lines (256 KB: Exchange Online takes no larger message header); these total 262158',
      },
    ],
  ])
})

test('two X- headers whose names differ only in case are a 400 naming both, nothing stored', async () => {
  const headers = { 'X-Trace': 'a', 'x-trace': 'b' }
  const r = await refusal({ to: 'a@example.com', subject: 's', text: 't', headers })
  expect([r.status, r.type, r.errors]).toEqual([
    400,
    'urn:outbox-mailer:problem:validation_failed',
    [
      {
        path: 'message.headers.X-Trace',
        message:
          'is the same header as x-trace (header names are case-insensitive): give one of them',
      },
    ],
  ])
})

test('a display name past 256 KB, far within the body and sendMail limits, is a 400 naming message, nothing stored', async () => {
  const to = { address: 'a@example.com', name: 'n'.repeat(300_000) }
  const r = await refusal({ to, subject: 's', text: 't' })
  expect([r.status, r.type, r.errors?.map((e) => e.path)]).toEqual([
    400,
    'urn:outbox-mailer:problem:validation_failed',
    ['message'],
  ])
  expect(r.errors?.[0]?.message).toStartWith('has a header of at least 300')
})
