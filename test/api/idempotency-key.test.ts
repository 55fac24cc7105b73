// POST /v1/outbox with an Idempotency-Key: a replay of the same request is answered with its row; another request under the key is refused.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import net from 'node:net'
import { enqueueSql, send, setState } from './support/harness.ts'
import { appOnOwnDatabase } from './support/own-database-app.ts'
import { token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const s = appOnOwnDatabase()
const message = { to: 'ada@example.com', subject: 'Order 7 shipped', text: 'It is on its way' }

const enqueue = (body: unknown, key?: string, over: { token?: string } = {}) =>
  send(s.app, 'POST', '/v1/outbox', {
    token: over.token ?? s.tk,
    body,
    headers: key === undefined ? {} : { 'idempotency-key': key },
  })

const rowCount = async () =>
  (await s.t.pool.query('select count(*)::int as n from mailer.email_outbox')).rows[0].n as number

describe('the same key with another request', () => {
  test('another message or other options under a used key are a 422 naming the row; nothing is inserted', async () => {
    const first = await enqueue(
      { message, options: { priority: 5, correlationId: 'order-7', maxAttempts: 3 } },
      'order-7',
    )
    expect(first.status).toBe(201)
    const id = (first.body as { id: string }).id
    const others: [string, unknown][] = [
      ['another subject', { message: { ...message, subject: 'Order 8 shipped' } }],
      ['another recipient', { message: { ...message, to: 'bob@example.com' } }],
      // A body enqueue refuses under a new key: the key names a row first (0175), as for a header.
      ['an empty text', { message: { ...message, text: '' } }],
      ['a text of blanks', { message: { ...message, text: ' \u00a0\n' } }],
      [
        'an attachment more',
        {
          message: { ...message, attachments: [{ filename: 'a.txt', contentBase64: 'aGk=' }] },
        },
      ],
      [
        'another priority',
        { message, options: { priority: 6, correlationId: 'order-7', maxAttempts: 3 } },
      ],
      [
        'another correlation id',
        { message, options: { priority: 5, correlationId: 'order-8', maxAttempts: 3 } },
      ],
      [
        'another maxAttempts',
        { message, options: { priority: 5, correlationId: 'order-7', maxAttempts: 4 } },
      ],
      [
        'an expiresAt',
        {
          message,
          options: {
            priority: 5,
            correlationId: 'order-7',
            maxAttempts: 3,
            expiresAt: '2099-01-01T00:00:00Z',
          },
        },
      ],
    ]
    for (const [what, body] of others) {
      const r = await enqueue(body, 'order-7')
      const b = r.body as { type?: string; detail?: string }
      expect([what, r.status, b.type]).toEqual([
        what,
        422,
        'urn:outbox-mailer:problem:idempotency_key_reused',
      ])
      expect(b.detail).toContain(`row ${id}`)
      // The problem never echoes what the request carried.
      expect(b.detail).not.toContain('Order 8')
      expect(b.detail).not.toContain('bob@')
    }
    expect(await rowCount()).toBe(1)
    const row = await s.t.pool.query(
      'select message ->> $2 as subject from mailer.email_outbox where id = $1',
      [id, 'subject'],
    )
    expect(row.rows[0].subject).toBe('Order 7 shipped')
  })

  test('a key a row enqueued through SQL holds, with another message, is a 422 too', async () => {
    const id = await enqueueSql(s.t.pool, { dedupeKey: 'from-sql' })
    const r = await enqueue({ message }, 'from-sql')
    expect([r.status, (r.body as { detail?: string }).detail]).toEqual([
      422,
      expect.stringContaining(`row ${id}`),
    ])
  })
})

describe('a replay of the same request', () => {
  test('answers 200 with its id, however the row has moved on (failed, cancelled, sent; its send_at moved)', async () => {
    const body = {
      message,
      options: { priority: 5, sendAt: '2020-01-01T00:00:00Z', maxAttempts: 3 },
    }
    const first = await enqueue(body, 'order-7')
    const id = (first.body as { id: string }).id
    for (const state of ['failed', 'cancelled', 'sent'] as const) {
      await setState(s.t.pool, id, state)
      // A retry moves send_at: sendAt is not compared.
      await s.t.pool.query(`update mailer.email_outbox set send_at = now() where id = $1`, [id])
      const again = await enqueue(body, 'order-7')
      expect([state, again.status, again.body]).toEqual([state, 200, { id }])
    }
  })

  test('after its expiresAt has passed still answers 200 with its id (the row may have been sent), while a new request is refused', async () => {
    // The request as it was first sent, its row stored then and sent before it expired: a client
    // whose answer was lost repeats it later. A 400 ("expiresAt must be later than sendAt (or
    // now)") told it the mail was not enqueued, though it may have gone; under a new key it would
    // go again. And with a sendAt, a new request that had expired already was a 201 for a mail
    // never sent.
    const expiresAt = '2020-01-01T00:05:00Z'
    for (const [key, options] of [
      ['otp-7', { expiresAt }],
      ['otp-8', { sendAt: '2020-01-01T00:00:00Z', expiresAt }],
    ] as const) {
      const body = { message, options }
      const stored = await s.t.pool.query<{ id: string }>(
        `insert into mailer.email_outbox (tenant, dedupe_key, send_at, expires_at, created_at, message, status, sent_at)
         values ('default', $1, '2020-01-01T00:00:00Z', $2, '2020-01-01T00:00:00Z', mailer.normalize_message($3::jsonb), 'sent', '2020-01-01T00:01:00Z')
         returning id::text`,
        [key, expiresAt, JSON.stringify(message)],
      )
      const id = stored.rows[0]!.id
      const again = await enqueue(body, key)
      expect([key, again.status, again.body]).toEqual([key, 200, { id }])
      // Another request under the key is still told so.
      const other = await enqueue({ ...body, message: { ...message, text: 'another' } }, key)
      expect([key, other.status]).toEqual([key, 422])
      // Under a new key the same mail is a new request, which could never be sent: refused, naming it.
      const fresh = await enqueue(body, `${key}-new`)
      expect([key, fresh.status, (fresh.body as { errors?: unknown }).errors]).toEqual([
        key,
        400,
        [{ path: 'options.expiresAt', message: expect.stringMatching(/^must be later than now/) }],
      ])
    }
    expect(await rowCount()).toBe(2)
  })

  test('after an upgrade changed how the message normalizes, the same request still answers 200 with its id', async () => {
    // Releases before 0023/0024 stored a subject's tab as it came; normalize_message now folds it
    // into a space. The client's retry of the very body its first request sent is no other request.
    const sent = { ...message, subject: 'Order 7\tshipped' }
    const stored = await s.t.pool.query<{ id: string }>(
      `insert into mailer.email_outbox (tenant, dedupe_key, message)
       values ('default', 'order-7', mailer.normalize_message($1::jsonb) || jsonb_build_object('subject', $2::text))
       returning id::text`,
      [JSON.stringify(sent), sent.subject],
    )
    const id = stored.rows[0]!.id
    const again = await enqueue({ message: sent }, 'order-7')
    expect([again.status, again.body]).toEqual([200, { id }])
    // Another message under the key is still told so.
    const other = await enqueue({ message: { ...sent, text: 'another' } }, 'order-7')
    expect(other.status).toBe(422)
    expect(await rowCount()).toBe(1)
  })

  test('of a message taken before 0086 refused it (headers alike but for case, a header past 256 KB) still answers 200 with its id', async () => {
    // Stored as enqueue_email stored them then; 0086 refuses both at enqueue. The client's retry of
    // a request that succeeded is told so: a 400 said the mail was not queued, and a changed
    // message under a new key would have sent it twice.
    const caseAlike = { ...message, headers: { 'X-Trace': 'a', 'x-trace': 'b' } }
    const longName = { ...message, to: { address: 'ada@example.com', name: 'n'.repeat(262_144) } }
    const answers = []
    const ids: string[] = []
    for (const [key, sent, stored] of [
      ['case-alike', caseAlike, { headers: caseAlike.headers }],
      ['long-name', longName, { to: [longName.to] }],
    ] as const) {
      const row = await s.t.pool.query<{ id: string }>(
        `insert into mailer.email_outbox (tenant, dedupe_key, message)
         values ('default', $1, mailer.normalize_message($2::jsonb) || $3::jsonb) returning id::text`,
        [key, JSON.stringify(message), JSON.stringify(stored)],
      )
      const again = await enqueue({ message: sent }, key)
      // Another request under the key is still told so; under a new key the message is refused.
      const other = await enqueue({ message: { ...sent, text: 'another' } }, key)
      const fresh = await enqueue({ message: sent }, `${key}-new`)
      answers.push([key, again.status, again.body, other.status, fresh.status])
      ids.push(row.rows[0]!.id)
    }
    expect(answers).toEqual([
      ['case-alike', 200, { id: ids[0] }, 422, 400],
      ['long-name', 200, { id: ids[1] }, 422, 400],
    ])
    expect(await rowCount()).toBe(2)
  })

  test('a row taken before 0174 with an empty body is compared, not refused: its replay gets its id, another request under its key a 422', async () => {
    // 0174 refuses {"text": ""} alone at enqueue; a row stored so before keeps its key. The
    // comparison with a request under that key reads the row through normalize_message, which
    // must not refuse it. The replay of the empty request is answered as the first request was
    // (200, its row's id; the row fails at send, unsent), not refused anew; so is a repeat of
    // options.dedupeKey without the header.
    const empty = { ...message, text: '' }
    const row = await s.t.pool.query<{ id: string }>(
      `insert into mailer.email_outbox (tenant, dedupe_key, message)
       values ('default', 'empty-body', $1::jsonb) returning id::text`,
      [JSON.stringify({ ...empty, to: [{ address: message.to }], cc: [], bcc: [], replyTo: [] })],
    )
    const other = await enqueue({ message }, 'empty-body')
    const again = await enqueue({ message: empty }, 'empty-body')
    const byOption = await enqueue({ message: empty, options: { dedupeKey: 'empty-body' } })
    const id = row.rows[0]!.id
    expect([
      other.status,
      other.body,
      again.status,
      again.body,
      byOption.status,
      byOption.body,
    ]).toEqual([
      422,
      expect.objectContaining({ detail: expect.stringContaining(`names outbox row ${id}`) }),
      200,
      { id },
      200,
      { id },
    ])
    // A new key is a new request: refused, as without a key.
    const fresh = await enqueue({ message: empty }, 'empty-body-2')
    expect([fresh.status, (fresh.body as { detail?: string }).detail]).toEqual([
      400,
      'mailer: message.text must not be empty ("" is no body): a message needs message.text or message.html',
    ])
    expect(await rowCount()).toBe(1)
  })

  test('spelt another way is the same request: a recipient as a string or a list, defaults given or left out', async () => {
    const first = await enqueue({ message }, 'order-7')
    const { id } = first.body as { id: string }
    const same = [
      { message: { ...message, to: ['ada@example.com'] } },
      { message: { ...message, to: { address: 'ada@example.com' } } },
      { message, options: { priority: 0 } },
      { message, options: { dedupeKey: 'order-7' } },
      { message: { text: message.text, subject: message.subject, to: message.to } },
    ]
    for (const body of same) {
      const r = await enqueue(body, 'order-7')
      expect([body, r.status, r.body]).toEqual([body, 200, { id }])
    }
    expect(await rowCount()).toBe(1)
  })

  test('concurrent requests with one key and two messages: one row, its request 201/200, the other 422', async () => {
    const other = { message: { ...message, subject: 'Order 8 shipped' } }
    const all = await Promise.all(
      Array.from({ length: 8 }, (_, i) => enqueue(i % 2 === 0 ? { message } : other, 'race')),
    )
    expect(await rowCount()).toBe(1)
    const subject = (
      await s.t.pool.query(`select message ->> 'subject' as s from mailer.email_outbox`)
    ).rows[0].s as string
    const statuses = all.map((r, i) => [
      (i % 2 === 0 ? message : other.message).subject === subject,
      r.status,
    ])
    // The four requests of the row's message got 201 once and 200 after; the four others 422.
    expect(
      statuses
        .filter(([mine]) => mine)
        .map(([, s]) => s)
        .sort(),
    ).toEqual([200, 200, 200, 201])
    expect(statuses.filter(([mine]) => !mine).map(([, s]) => s)).toEqual([422, 422, 422, 422])
  })
})

describe('options.dedupeKey without the header keeps enqueue_email’s rule', () => {
  test('a repeated dedupe key returns the existing id, whatever the message (a business key, not a request replay)', async () => {
    const a = await enqueue({ message, options: { dedupeKey: 'welcome-42' } })
    const b = await enqueue({
      message: { ...message, subject: 'Welcome again' },
      options: { dedupeKey: 'welcome-42' },
    })
    expect([a.status, b.status]).toEqual([201, 200])
    expect(b.body).toEqual(a.body)
  })
})

describe('tenants', () => {
  test('each tenant’s keys are its own: the same key in another tenant is a new row, not a 422', async () => {
    const acme = await enqueue({ message }, 'k', { token: await token({ tenant: 'acme' }) })
    const globex = await enqueue({ message: { ...message, subject: 'Other' } }, 'k', {
      token: await token({ tenant: 'globex' }),
    })
    expect([acme.status, globex.status]).toEqual([201, 201])
  })
})

/** POSTs over a real socket through Bun.serve, the key written as raw UTF-8 bytes, as a client sends it. */
async function postRaw(key: Buffer, body: unknown): Promise<{ status: number; body: unknown }> {
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: (req) => s.app.fetch(req) })
  try {
    const json = Buffer.from(JSON.stringify(body))
    const socket = net.connect(server.port!, '127.0.0.1')
    const chunks: Buffer[] = []
    socket.on('data', (d: Buffer) => chunks.push(d))
    const ended = new Promise((r) => socket.once('close', r))
    socket.write(
      Buffer.concat([
        Buffer.from(
          `POST /v1/outbox HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer ${s.tk}\r\nContent-Type: application/json\r\nContent-Length: ${json.length}\r\nIdempotency-Key: `,
        ),
        key,
        Buffer.from('\r\n\r\n'),
        json,
      ]),
    )
    await ended
    const text = Buffer.concat(chunks).toString('utf8')
    const [head, ...rest] = text.split('\r\n\r\n')
    const status = Number(head!.split(' ')[1])
    const payload = rest.join('\r\n\r\n')
    return { status, body: payload.startsWith('{') ? JSON.parse(payload) : payload }
  } finally {
    await server.stop(true)
  }
}

describe('the key length', () => {
  test('500 characters are taken; 501 is a 400 naming the header, and nothing is inserted', async () => {
    expect((await enqueue({ message }, 'k'.repeat(500))).status).toBe(201)
    const r = await enqueue({ message }, 'k'.repeat(501))
    expect([r.status, (r.body as { errors?: { path: string }[] }).errors?.[0]?.path]).toEqual([
      400,
      'idempotency-key',
    ])
    expect(await rowCount()).toBe(1)
  })
})

describe('a key that is not ASCII', () => {
  test('is a 400 naming the header, not stored as what its UTF-8 bytes read as Latin-1 (which ?dedupeKey= and SQL callers never find)', async () => {
    const r = await postRaw(Buffer.from('заказ-7', 'utf8'), { message })
    expect([r.status, (r.body as { errors?: { path: string }[] }).errors?.[0]?.path]).toEqual([
      400,
      'idempotency-key',
    ])
    expect(await rowCount()).toBe(0)
    // The same text as options.dedupeKey (a JSON string) is stored as sent.
    const body = await enqueue({ message, options: { dedupeKey: 'заказ-7' } })
    expect(body.status).toBe(201)
    const row = await s.t.pool.query('select dedupe_key from mailer.email_outbox')
    expect(row.rows).toEqual([{ dedupe_key: 'заказ-7' }])
  })

  test('printable ASCII, spaces and punctuation included, is taken as sent', async () => {
    const key = 'order 7/2024:#a=b;c~'
    const r = await postRaw(Buffer.from(key), { message })
    expect(r.status).toBe(201)
    const row = await s.t.pool.query('select dedupe_key from mailer.email_outbox')
    expect(row.rows).toEqual([{ dedupe_key: key }])
  })
})
