// POST /v1/outbox's large bodies (past 4 MiB, up to 13 MiB) are read a few at a time per process: one more is a 429 with Retry-After, not memory the machine lacks.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { BODY_LIMIT_BYTES } from '../../src/api/body-limits.ts'
import { largeBodySlots } from '../../src/api/large-body-slots.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { type App, appOnDefault } from './support/harness.ts'
import { token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

// The process's slots, given to the app as serve gives its own: the test reads how many are taken.
const slots = largeBodySlots()
const s = {} as { t: TestDb; app: App; tk: string }
beforeAll(async () => {
  s.t = await createTestDb()
  s.app = appOnDefault(s.t, { largeBodySlots: slots }).app
  s.tk = await token()
})
afterAll(async () => {
  await s.t.drop()
})

/** A body of `size` bytes, sent once `finish` is called. */
function heldBody(size: number) {
  const envelope = JSON.stringify({ message: { to: 'ada@example.com', subject: 's', text: '' } })
  const head = envelope.replace('"text":""}}', '"text":"')
  const tail = '"}}'
  // Its text \u-escaped, as Python's json.dumps writes it: a message far below Graph's 4 MB.
  const room = size - head.length - tail.length
  const text = '\\u0436'.repeat(Math.floor(room / 6)) + 'x'.repeat(room % 6)
  const body = new TextEncoder().encode(head + text + tail)
  let finish: () => void = () => {}
  const finished = new Promise<void>((r) => {
    finish = r
  })
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      await finished
      controller.enqueue(body)
      controller.close()
    },
  })
  return { stream, finish, size: body.length }
}

const post = (body: ReadableStream<Uint8Array> | string, size: number) =>
  s.app.request('/v1/outbox', {
    method: 'POST',
    headers: {
      authorization: `Bearer ${s.tk}`,
      'content-type': 'application/json',
      'content-length': String(size),
    },
    body,
    // A stream body is sent half-duplex (fetch's rule).
    ...({ duplex: 'half' } as object),
  })

test('a third body past 4 MiB while two are being read is a 429 with Retry-After, a small one sent chunked is taken; once they are read a large one is taken', async () => {
  const size = BODY_LIMIT_BYTES + 1024 * 1024
  const held = [heldBody(size), heldBody(size)]
  const answers = held.map((h) => post(h.stream, h.size))
  // Both past the token and the rate limit, their slots taken (a stream may be pulled before that).
  await pollUntil(async () => (slots.reading === 2 ? true : undefined))

  const third = heldBody(size)
  third.finish()
  const refused = await post(third.stream, third.size)
  const problem = (await refused.json()) as { type?: string; detail?: string }
  expect([refused.status, problem.type, refused.headers.get('retry-after')]).toEqual([
    429,
    'urn:outbox-mailer:problem:large_bodies_busy',
    '1',
  ])
  expect(problem.detail).toContain('bodies past 4194304 bytes')

  // A small body is read beside them: only large ones wait. One sent chunked, its size unknown
  // until read, is read up to 4 MiB: ending within them it is taken; passing them, it waits.
  const small = JSON.stringify({ message: { to: 'ada@example.com', subject: 's', text: 'hi' } })
  expect((await post(small, small.length)).status).toBe(201)
  const chunked = (body: string | ReadableStream<Uint8Array>) =>
    s.app.request('/v1/outbox', {
      method: 'POST',
      headers: {
        authorization: `Bearer ${s.tk}`,
        'content-type': 'application/json',
        'transfer-encoding': 'chunked',
      },
      body,
      ...({ duplex: 'half' } as object),
    })
  const smallChunked = await chunked(small)
  expect([smallChunked.status, slots.reading]).toEqual([201, 2])
  const large = heldBody(size)
  large.finish()
  const largeChunked = await chunked(large.stream)
  const busy = (await largeChunked.json()) as { type?: string }
  expect([largeChunked.status, busy.type]).toEqual([
    429,
    'urn:outbox-mailer:problem:large_bodies_busy',
  ])

  for (const h of held) h.finish()
  expect((await Promise.all(answers)).map((r) => r.status)).toEqual([201, 201])
  const again = heldBody(size)
  again.finish()
  expect((await post(again.stream, again.size)).status).toBe(201)
})
