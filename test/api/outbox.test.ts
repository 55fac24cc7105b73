// The /v1 outbox routes against a real database: enqueue, list, get, cancel, retry, bulk, stats.
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { OpenAPIHono } from '@hono/zod-openapi'
import { sql } from 'kysely'
import pg from 'pg'
import type { AppEnv } from '../../src/api/context.ts'
import { EnqueueRequest } from '../../src/api/enqueue-schemas.ts'
import { onError } from '../../src/api/problem.ts'
import { loadConfig } from '../../src/config.ts'
import { openDb } from '../../src/db/open.ts'
import { isAppError } from '../../src/errors.ts'
import { silentLogger } from '../../src/log.ts'
import { renderLease } from '../../src/outbox/render.ts'
import { withStatementTimeout } from '../../src/outbox/statement-timeout.ts'
import { shownBodies } from '../../src/outbox/stored-message.ts'
import { serve } from '../../src/serve.ts'
import { BLANK_BODIES, NOT_BLANK_BODIES } from '../support/blank-bodies.ts'
import { closedPort } from '../support/closed-port.ts'
import { createTestDb, useTestDb } from '../support/db.ts'
import { pollUntil } from '../support/events.ts'
import { startFakeGraph } from '../support/fake-graph.ts'
import { graphWorker } from '../support/graph-worker.ts'
import { holdRowLocked } from '../support/hold-row-locked.ts'
import { untilLockWaits } from '../support/lock-waits.ts'
import { type App, appOnDefault, buildApp, enqueueSql, send, setState } from './support/harness.ts'
import { AUDIENCE, bearer, ISSUER, SECRET, token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
let app: App
let tk: string
const message = { to: 'ada@example.com', subject: 'Hello', text: 'Hi Ada' }
type Row = Record<string, unknown> & { id: string; status: string }

beforeAll(async () => {
  app = appOnDefault(t).app
  tk = await token()
})

/** Resolves on the next mailer_outbox notification seen by a dedicated LISTEN connection. */
async function listen() {
  const client = new pg.Client({ connectionString: t.url })
  await client.connect()
  await client.query('listen mailer_outbox')
  // The first notification's payload (an enqueue's and a cancel's wake are empty).
  const next = new Promise<string>((resolve) =>
    client.once('notification', (n) => resolve(n.payload ?? '')),
  )
  return { next, close: () => client.end() }
}

/**
 * A database handle whose connections are refused: port 1, seen refused, not a port freed a moment
 * ago, which another run's cluster can take meanwhile (and then refuse `nobody` at login).
 */
async function unreachableDb() {
  return openDb({
    name: 'down',
    url: `postgres://nobody@127.0.0.1:${await closedPort()}/nothing`,
    log: silentLogger,
  })
}

describe('POST /v1/outbox', () => {
  test('enqueues through mailer.enqueue_email and answers 201 with the id', async () => {
    const r = await send(app, 'POST', '/v1/outbox', {
      token: tk,
      body: { message, options: { priority: 5, correlationId: 'inq-1' } },
    })
    expect(r.status).toBe(201)
    const id = (r.body as { id: string }).id
    // RFC 9110 15.3.2: without Location the created resource would be the target URI, /v1/outbox.
    expect(r.headers.get('location')).toBe(`/v1/outbox/${id}`)
    const row = await t.pool.query(
      'select message, priority, correlation_id from mailer.email_outbox where id = $1',
      [id],
    )
    expect(row.rows[0].message.to).toEqual([{ address: 'ada@example.com' }])
    expect(row.rows[0].priority).toBe(5)
    expect(row.rows[0].correlation_id).toBe('inq-1')
  })

  test('a repeated Idempotency-Key answers 200 with the same id', async () => {
    const h = { 'idempotency-key': 'order-7' }
    const a = await send(app, 'POST', '/v1/outbox', { token: tk, body: { message }, headers: h })
    const b = await send(app, 'POST', '/v1/outbox', { token: tk, body: { message }, headers: h })
    expect([a.status, b.status]).toEqual([201, 200])
    expect(b.body).toEqual(a.body)
    const dedupe = await t.pool.query('select dedupe_key from mailer.email_outbox')
    expect(dedupe.rows).toEqual([{ dedupe_key: 'order-7' }])
  })

  test('concurrent requests with one key create exactly one row', async () => {
    const h = { 'idempotency-key': 'race' }
    const all = await Promise.all(
      Array.from({ length: 8 }, () =>
        send(app, 'POST', '/v1/outbox', { token: tk, body: { message }, headers: h }),
      ),
    )
    expect(all.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 200, 200, 201])
    expect(new Set(all.map((r) => (r.body as { id: string }).id)).size).toBe(1)
  })

  test('an Idempotency-Key that differs from options.dedupeKey is a 400', async () => {
    const r = await send(app, 'POST', '/v1/outbox', {
      token: tk,
      body: { message, options: { dedupeKey: 'a' } },
      headers: { 'idempotency-key': 'b' },
    })
    expect(r.status).toBe(400)
  })

  test('a body without the {"message": …} wrapper is one problem naming message and the shape it must have', async () => {
    const bare = await send(app, 'POST', '/v1/outbox', { token: tk, body: message })
    expect(bare.status).toBe(400)
    expect(bare.body).toMatchObject({
      type: 'urn:outbox-mailer:problem:validation_failed',
      detail:
        'message: is required: the body must be {"message": {...}, "options": {...}} (options optional); "to", "subject", "text" belong inside "message"',
      errors: [
        {
          path: 'message',
          message:
            'is required: the body must be {"message": {...}, "options": {...}} (options optional); "to", "subject", "text" belong inside "message"',
        },
      ],
    })
    // An empty object: the same problem, with no field to move.
    const empty = await send(app, 'POST', '/v1/outbox', { token: tk, body: {} })
    expect((empty.body as { errors: unknown[] }).errors).toEqual([
      {
        path: 'message',
        message:
          'is required: the body must be {"message": {...}, "options": {...}} (options optional)',
      },
    ])
  })

  test('validation errors are the ones Postgres raises, naming the field', async () => {
    const bad = await send(app, 'POST', '/v1/outbox', {
      token: tk,
      body: { message: { ...message, to: ['ok@example.com', 'nope'] } },
    })
    expect(bad.status).toBe(400)
    expect(bad.headers.get('content-type')).toBe('application/problem+json')
    expect(bad.body).toMatchObject({
      type: 'urn:outbox-mailer:problem:validation_failed',
      detail: 'mailer: message.to[1] is not a valid e-mail address',
      // The same shape as a schema error's: the field as a path, as the schema spells one.
      errors: [{ path: 'message.to.1', message: 'is not a valid e-mail address' }],
    })
    const schemaError = await send(app, 'POST', '/v1/outbox', {
      token: tk,
      body: { message: { ...message, attachments: [{ filename: 'a.txt' }] } },
    })
    // The schema spells an index as a path segment.
    expect((schemaError.body as { errors: { path: string }[] }).errors[0]?.path).toBe(
      'message.attachments.0.contentBase64',
    )
    // A field that holds a space (a header name) is named whole.
    const badHeader = await send(app, 'POST', '/v1/outbox', {
      token: tk,
      body: { message: { ...message, headers: { 'X Bad': 'v' } } },
    })
    expect(badHeader.body).toMatchObject({
      errors: [
        {
          path: 'message.headers.X Bad',
          message: 'must be an X- header name other than X-Outbox-Id and X-Correlation-Id',
        },
      ],
    })
    // A problem naming two fields reads after its path as a sentence, not from its "or".
    const noBody = await send(app, 'POST', '/v1/outbox', {
      token: tk,
      body: { message: { to: message.to, subject: message.subject } },
    })
    expect(noBody.body).toMatchObject({
      detail: 'mailer: message.text or message.html is required',
      errors: [{ path: 'message.text', message: 'is required, or message.html' }],
    })
    // "" is no body: an empty html alone is a 400 in SQL's words, not an empty mail.
    const emptyBody = await send(app, 'POST', '/v1/outbox', {
      token: tk,
      body: { message: { to: message.to, subject: message.subject, html: '' } },
    })
    expect([emptyBody.status, emptyBody.body]).toMatchObject([
      400,
      {
        detail:
          'mailer: message.html must not be empty ("" is no body): a message needs message.text or message.html',
        errors: [
          {
            path: 'message.html',
            message:
              'must not be empty ("" is no body): a message needs message.text or message.html',
          },
        ],
      },
    ])
    const unknownKey = await send(app, 'POST', '/v1/outbox', {
      token: tk,
      body: { message: { ...message, bodyy: 'x' } },
    })
    expect((unknownKey.body as { detail: string }).detail).toStartWith(
      'mailer: message.bodyy is not a known key',
    )
    const badOption = await send(app, 'POST', '/v1/outbox', {
      token: tk,
      body: { message, options: { sendAt: 'tomorrow' } },
    })
    expect((badOption.body as { detail: string }).detail).toContain('options.sendAt')
    // A time past the year 9999 in UTC would be listed as "+010000-…", which is no date-time.
    const farExpiry = await send(app, 'POST', '/v1/outbox', {
      token: tk,
      body: { message, options: { expiresAt: '9999-12-31T23:59:59-12:00' } },
    })
    expect([farExpiry.status, farExpiry.body]).toMatchObject([
      400,
      {
        errors: [
          {
            path: 'options.expiresAt',
            message: 'must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z',
          },
        ],
      },
    ])
    const rows = await t.pool.query('select count(*)::int as n from mailer.email_outbox')
    expect(rows.rows[0].n).toBe(0)
  })

  test('a body of blanks only is a 400 in the words of "", for the inputs SQL is tested with; one that shows something is taken (0175)', async () => {
    for (const [what, blank] of BLANK_BODIES) {
      const r = await send(app, 'POST', '/v1/outbox', {
        token: tk,
        body: { message: { to: message.to, subject: message.subject, text: blank } },
      })
      expect([what, r.status, r.body]).toMatchObject([
        what,
        400,
        {
          detail:
            'mailer: message.text must not be empty ("" is no body): a message needs message.text or message.html',
          errors: [
            {
              path: 'message.text',
              message:
                'must not be empty ("" is no body): a message needs message.text or message.html',
            },
          ],
        },
      ])
    }
    expect((await t.pool.query('select count(*)::int as n from mailer.email_outbox')).rows).toEqual(
      [{ n: 0 }],
    )
    for (const [what, body] of NOT_BLANK_BODIES) {
      const r = await send(app, 'POST', '/v1/outbox', {
        token: tk,
        body: { message: { to: message.to, subject: message.subject, html: body } },
      })
      expect([what, r.status]).toEqual([what, 201])
    }
  })

  test('what mailer.enqueue_email accepts, the API accepts: null sendAt, expiresAt, contentType', async () => {
    const body = {
      message: {
        ...message,
        attachments: [{ filename: 'a.txt', contentBase64: 'aGk=', contentType: null }],
      },
      options: { sendAt: null, expiresAt: null },
    }
    const sql = await t.pool.query<{ id: string }>('select mailer.enqueue_email($1, $2) as id', [
      body.message,
      body.options,
    ])
    expect(sql.rows[0]!.id).toMatch(/^\d+$/)
    const r = await send(app, 'POST', '/v1/outbox', { token: tk, body })
    expect([r.status, r.body]).toEqual([201, { id: expect.stringMatching(/^\d+$/) }])
  })

  test('"options": null is no options, as a message field\'s null is no value: 201, and the same request as one without options', async () => {
    // What a client generated from the document sends for options it leaves unset (a Java client's
    // serializer writes null): enqueue_email takes NULL options as none too.
    const sql = await t.pool.query<{ id: string }>('select mailer.enqueue_email($1, null) as id', [
      message,
    ])
    expect(sql.rows[0]!.id).toMatch(/^\d+$/)
    const post = (body: object) =>
      send(app, 'POST', '/v1/outbox', {
        token: tk,
        body,
        headers: { 'idempotency-key': 'opt-null' },
      })
    const first = await post({ message, options: null })
    const again = await post({ message })
    expect([first.status, again.status, again.body]).toEqual([201, 200, first.body])
  })

  test('an option given null is not given, as sendAt and expiresAt already were: defaults apply, and null is neither another key nor another tenant', async () => {
    const nulls = {
      tenant: null,
      dedupeKey: null,
      priority: null,
      maxAttempts: null,
      correlationId: null,
    }
    const plain = await send(app, 'POST', '/v1/outbox', {
      token: tk,
      body: { message, options: nulls },
    })
    // Beside an Idempotency-Key a null dedupeKey is no other key; for a tenant's token, no other tenant.
    const confined = await send(app, 'POST', '/v1/outbox', {
      token: await token({ tenant: 'acme' }),
      body: { message, options: nulls },
      headers: { 'idempotency-key': 'nulls-1' },
    })
    expect([plain.status, confined.status]).toEqual([201, 201])
    const { rows } = await t.pool.query(
      `select tenant, dedupe_key, priority, max_attempts, correlation_id from mailer.email_outbox order by id`,
    )
    expect(rows).toEqual([
      {
        tenant: 'default',
        dedupe_key: null,
        priority: 0,
        max_attempts: null,
        correlation_id: null,
      },
      {
        tenant: 'acme',
        dedupe_key: 'nulls-1',
        priority: 0,
        max_attempts: null,
        correlation_id: null,
      },
    ])
  })

  test('an attachment contentType that is no MIME type is refused by the schema and by SQL alike', async () => {
    const withType = (contentType: string) => ({
      message: {
        ...message,
        attachments: [{ filename: 'a.txt', contentBase64: 'aGk=', contentType }],
      },
    })
    const error = {
      path: 'message.attachments.0.contentType',
      message:
        'must be a MIME type: type/subtype, then optional ; name=value parameters (e.g. text/plain; charset=utf-8)',
    }
    for (const contentType of ['text/plain\r\nX-Evil: 1', 'text', 'text/pl ain']) {
      // The request schema names it before any statement runs…
      const parsed = EnqueueRequest.safeParse(withType(contentType))
      expect([contentType, parsed.error?.issues.map((i) => i.path.join('.'))]).toEqual([
        contentType,
        [error.path],
      ])
      const r = await send(app, 'POST', '/v1/outbox', { token: tk, body: withType(contentType) })
      expect([contentType, r.status, r.body]).toMatchObject([contentType, 400, { errors: [error] }])
    }
    const rows = await t.pool.query('select count(*)::int as n from mailer.email_outbox')
    expect(rows.rows[0].n).toBe(0)
    const typed = await send(app, 'POST', '/v1/outbox', {
      token: tk,
      body: withType('text/plain; charset="utf-8"'),
    })
    expect(typed.status).toBe(201)
  })

  test('a control character in an attachment file name or content id is refused by the schema and by SQL alike', async () => {
    const png = { filename: 'logo.png', contentBase64: 'aGk=', contentType: 'image/png' }
    const withAttachment = (attachment: Record<string, unknown>) => ({
      message: { ...message, html: '<img src="cid:logo">', attachments: [png, attachment] },
    })
    for (const [field, value] of [
      ['filename', 'a\r\nX-Evil: 1.png'],
      ['filename', 'a\t.png'],
      ['contentId', 'logo\r\nX-Evil: 1'],
      ['contentId', 'logo\u007f'],
    ] as const) {
      const body = withAttachment({ ...png, [field]: value })
      const error = {
        path: `message.attachments.1.${field}`,
        message: 'must not contain a control character (such as a line break or a tab)',
      }
      // The request schema names it before any statement runs…
      const parsed = EnqueueRequest.safeParse(body)
      expect([value, parsed.error?.issues.map((i) => [i.path.join('.'), i.message])]).toEqual([
        value,
        [[error.path, error.message]],
      ])
      const r = await send(app, 'POST', '/v1/outbox', { token: tk, body })
      expect([value, r.status, r.body]).toMatchObject([value, 400, { errors: [error] }])
      // …and mailer.enqueue_email with the same words, for a caller that skips the API.
      const refused = await t.pool
        .query('select mailer.enqueue_email($1::jsonb)', [JSON.stringify(body.message)])
        .then(
          () => null,
          (e: Error) => e.message,
        )
      expect(refused).toBe(`mailer: message.attachments[1].${field} ${error.message}`)
    }
    const rows = await t.pool.query('select count(*)::int as n from mailer.email_outbox')
    expect(rows.rows[0].n).toBe(0)
    const inline = await send(app, 'POST', '/v1/outbox', {
      token: tk,
      body: withAttachment({ ...png, filename: 'Logo (2).png', contentId: 'logo' }),
    })
    expect(inline.status).toBe(201)
  })

  test('an address holding a control character or a blank other than ASCII whitespace is a 400 naming it; nothing is inserted', async () => {
    // Stored before 0043, and written by the file transport as another address ("ab@…",
    // "ana <maria@…>"); no mailbox has such an address for Graph to resolve.
    for (const [to, path] of [
      [['ada@example.com', 'a\u0001b@example.com'], 'message.to.1'],
      [{ address: 'ana\u00a0maria@example.com', name: 'Ana' }, 'message.to.address'],
    ] as const) {
      const r = await send(app, 'POST', '/v1/outbox', {
        token: tk,
        body: { message: { ...message, to } },
      })
      expect([path, r.status, r.headers.get('content-type')]).toEqual([
        path,
        400,
        'application/problem+json',
      ])
      expect(r.body).toMatchObject({
        type: 'urn:outbox-mailer:problem:validation_failed',
        errors: [{ path, message: 'is not a valid e-mail address' }],
      })
    }
    const { rows } = await t.pool.query('select count(*)::int as n from mailer.email_outbox')
    expect(rows).toEqual([{ n: 0 }])
  })

  test('a line break in the subject or a display name is folded to a space, not refused', async () => {
    const r = await send(app, 'POST', '/v1/outbox', {
      token: tk,
      body: {
        message: {
          ...message,
          subject: 'Question about\r\nmy order\n',
          to: { address: 'ada@example.com', name: 'Ada\nLovelace' },
        },
      },
    })
    expect(r.status).toBe(201)
    const id = (r.body as { id: string }).id
    const got = await send(app, 'GET', `/v1/outbox/${id}`, { token: tk })
    expect((got.body as { message: unknown }).message).toMatchObject({
      subject: 'Question about my order',
      to: [{ address: 'ada@example.com', name: 'Ada Lovelace' }],
    })
  })

  test('malformed JSON and a wrong shape are 400 problems', async () => {
    const malformed = await send(app, 'POST', '/v1/outbox', { token: tk, body: '{"message": ' })
    expect(malformed.status).toBe(400)
    expect(malformed.headers.get('content-type')).toBe('application/problem+json')
    const shape = await send(app, 'POST', '/v1/outbox', { token: tk, body: { msg: message } })
    expect(shape.status).toBe(400)
    expect((shape.body as { errors: { path: string }[] }).errors.map((e) => e.path)).toContain(
      'message',
    )
  })

  test('the insert wakes listening workers', async () => {
    const l = await listen()
    try {
      await send(app, 'POST', '/v1/outbox', { token: tk, body: { message } })
      await l.next
    } finally {
      await l.close()
    }
  })
})

describe('GET /v1/outbox', () => {
  test('lists newest first without bodies, page by page through an opaque cursor', async () => {
    const ids: string[] = []
    for (let i = 0; i < 5; i++) ids.push(await enqueueSql(t.pool))
    const seen: string[] = []
    let url = '/v1/outbox?limit=2'
    for (let page = 0; page < 5; page++) {
      const r = await send(app, 'GET', url, { token: tk })
      expect(r.status).toBe(200)
      const body = r.body as { items: Row[]; nextCursor: string | null }
      for (const item of body.items) {
        expect(item).not.toHaveProperty('message')
        expect(item).not.toHaveProperty('sourceRow')
        seen.push(item.id)
      }
      if (!body.nextCursor) break
      expect(body.nextCursor).not.toContain(body.items.at(-1)!.id)
      url = `/v1/outbox?limit=2&cursor=${body.nextCursor}`
    }
    expect(seen).toEqual([...ids].reverse())
  })

  test('filters by status, tenant, dedupe key, correlation id and time ranges', async () => {
    const a = await enqueueSql(t.pool, { tenant: 'acme', dedupeKey: 'd1', correlationId: 'c1' })
    const b = await enqueueSql(t.pool, { tenant: 'beta' })
    const c = await enqueueSql(t.pool, { tenant: 'acme' })
    await setState(t.pool, b, 'sent')
    await t.pool.query(
      `update mailer.email_outbox set created_at = '2020-01-01T00:00:00Z' where id = $1`,
      [c],
    )
    const ids = async (q: string) =>
      (
        (await send(app, 'GET', `/v1/outbox?${q}`, { token: tk })).body as { items: Row[] }
      ).items.map((i) => i.id)
    expect(await ids('status=sent')).toEqual([b])
    expect(await ids('tenant=acme')).toEqual([c, a])
    expect(await ids('dedupeKey=d1')).toEqual([a])
    expect(await ids('correlationId=c1')).toEqual([a])
    expect(await ids('createdTo=2021-01-01T00:00:00Z')).toEqual([c])
    expect(await ids('createdFrom=2021-01-01T00:00:00Z')).toEqual([b, a])
    expect(await ids('sentFrom=2021-01-01T00:00:00Z')).toEqual([b])
    expect(await ids('sentTo=2021-01-01T00:00:00Z')).toEqual([])
  })

  test('limit is capped, and status and cursor are checked', async () => {
    expect((await send(app, 'GET', '/v1/outbox?limit=201', { token: tk })).status).toBe(400)
    expect((await send(app, 'GET', '/v1/outbox?status=lost', { token: tk })).status).toBe(400)
    // Not base64 of an id, and ids under another prefix (a client building its own cursor).
    const b64 = (text: string) => Buffer.from(text).toString('base64url')
    for (const cursor of ['bm9wZQ', b64('o2:12'), b64('12345'), b64('12')]) {
      const badCursor = await send(app, 'GET', `/v1/outbox?cursor=${cursor}`, { token: tk })
      expect([cursor, badCursor.status]).toEqual([cursor, 400])
      expect((badCursor.body as { errors: { path: string }[] }).errors[0]!.path).toBe('cursor')
    }
  })
})

describe('unknown query parameters', () => {
  test('a misspelt list filter is a 400 naming it and the accepted ones, not an unfiltered list', async () => {
    await enqueueSql(t.pool)
    const r = await send(app, 'GET', '/v1/outbox?createdAfter=2030-01-01T00:00:00Z', { token: tk })
    expect(r.status).toBe(400)
    expect(r.headers.get('content-type')).toBe('application/problem+json')
    const body = r.body as { type: string; detail: string; errors: { path: string }[] }
    expect(body.type).toBe('urn:outbox-mailer:problem:validation_failed')
    expect(body.errors.map((e) => e.path)).toEqual(['createdAfter'])
    for (const name of ['status', 'tenant', 'createdFrom', 'createdTo', 'limit', 'cursor', 'db']) {
      expect(body.detail).toContain(name)
    }
  })

  test('on every /v1 route the 400 names the unknown parameter and the accepted ones, and nothing happens', async () => {
    const id = await enqueueSql(t.pool)
    const enqueued = { message }
    const filter = { filter: { status: ['pending'] } }
    const listAccepted =
      'db, status, tenant, createdFrom, createdTo, sentFrom, sentTo, dedupeKey, correlationId, lastErrorCode, template, mayHaveBeenDelivered, order, limit, cursor'
    for (const [method, path, body, accepted] of [
      ['GET', '/v1/outbox?cachebuster=1', undefined, listAccepted],
      ['GET', `/v1/outbox/${id}?cachebuster=1`, undefined, 'db'],
      ['GET', '/v1/stats?cachebuster=1', undefined, 'db'],
      ['POST', '/v1/outbox?cachebuster=1', enqueued, 'db'],
      ['POST', `/v1/outbox/${id}/cancel?cachebuster=1`, undefined, 'db'],
      ['POST', `/v1/outbox/${id}/retry?cachebuster=1`, undefined, 'db'],
      ['POST', '/v1/outbox/cancel?cachebuster=1', filter, 'db'],
      ['POST', '/v1/outbox/retry?cachebuster=1', filter, 'db'],
    ] as const) {
      const r = await send(app, method, path, { token: tk, ...(body ? { body } : {}) })
      expect([method, path, r.status, r.headers.get('content-type'), r.body]).toMatchObject([
        method,
        path,
        400,
        'application/problem+json',
        {
          type: 'urn:outbox-mailer:problem:validation_failed',
          errors: [
            {
              path: 'cachebuster',
              message: `is not a query parameter of this route (accepted: ${accepted})`,
            },
          ],
        },
      ])
    }
    const rows = await t.pool.query('select id::text, status from mailer.email_outbox')
    expect(rows.rows).toEqual([{ id, status: 'pending' }])
  })

  test("a parameter named as an object's own keys (__proto__, constructor, toString, hasOwnProperty) is a 400 too on every /v1 route, and nothing happens", async () => {
    // Hono's query object drops __proto__: it was answered 200, the page unfiltered.
    const id = await enqueueSql(t.pool)
    const filter = { filter: { status: ['failed'] } }
    const seen: unknown[] = []
    for (const name of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      for (const [method, path, body] of [
        ['GET', '/v1/outbox', undefined],
        ['GET', `/v1/outbox/${id}`, undefined],
        ['GET', '/v1/stats', undefined],
        ['POST', '/v1/outbox', { message }],
        ['POST', `/v1/outbox/${id}/cancel`, undefined],
        ['POST', '/v1/outbox/retry', filter],
      ] as const) {
        const r = await send(app, method, `${path}?${name}=x`, {
          token: tk,
          ...(body ? { body } : {}),
        })
        const errors = (r.body as { errors?: { path: string; message: string }[] }).errors
        seen.push([method, path, name, r.status, errors?.map((e) => [e.path, e.message])])
      }
    }
    expect(seen).toEqual(
      seen.map((s) => {
        const [method, path, name] = s as [string, string, string]
        return [
          method,
          path,
          name,
          400,
          [[name, expect.stringMatching(/^is not a query parameter of this route \(accepted: /)]],
        ]
      }),
    )
    // Named beside a wrong value of a parameter the route takes, as every problem is.
    const both = await send(app, 'GET', '/v1/outbox?limit=0&__proto__=x', { token: tk })
    expect([
      both.status,
      (both.body as { errors: { path: string; message: string }[] }).errors,
    ]).toEqual([
      400,
      [
        { path: 'limit', message: 'must be at least 1 (given "0")' },
        { path: '__proto__', message: expect.stringMatching(/^is not a query parameter/) },
      ],
    ])
    const rows = await t.pool.query('select id::text, status from mailer.email_outbox')
    expect(rows.rows).toEqual([{ id, status: 'pending' }])
  })

  test('every route that takes ?db= refuses any other parameter; the documented ones still work', async () => {
    const id = await enqueueSql(t.pool)
    for (const [method, path] of [
      ['GET', `/v1/outbox/${id}?dbname=default`],
      ['GET', '/v1/stats?dbname=default'],
      ['POST', `/v1/outbox/${id}/cancel?force=1`],
      ['POST', `/v1/outbox/${id}/retry?force=1`],
    ] as const) {
      const r = await send(app, method, path, { token: tk })
      expect([path, r.status]).toEqual([path, 400])
      const detail = (r.body as { detail: string }).detail
      expect([path, detail]).toEqual([path, expect.stringMatching(/is not a query parameter.*db/)])
    }
    const listed = await send(app, 'GET', '/v1/outbox?db=default&status=pending&limit=5', {
      token: tk,
    })
    expect(listed.status).toBe(200)
    expect((await send(app, 'GET', `/v1/outbox/${id}?db=default`, { token: tk })).status).toBe(200)
    expect((await send(app, 'GET', '/v1/stats?db=default', { token: tk })).status).toBe(200)
  })

  test('HEAD is checked as GET; the operations routes take no parameter and ignore any', async () => {
    expect((await send(app, 'HEAD', '/v1/outbox?createdAfter=x', { token: tk })).status).toBe(400)
    expect((await send(app, 'HEAD', '/v1/outbox', { token: tk })).status).toBe(200)
    // Probes and scrapers may add one (a cache-buster); nothing there filters, so nothing widens.
    for (const path of ['/healthz', '/readyz', '/metrics', '/openapi.json', '/docs']) {
      for (const method of ['GET', 'HEAD']) {
        const r = await send(app, method, `${path}?nocache=1`)
        expect([method, path, r.status]).toEqual([method, path, 200])
      }
    }
  })
})

describe('GET /v1/outbox/{id}', () => {
  test('returns the row with its message and attempt history, oldest first', async () => {
    const id = await enqueueSql(t.pool)
    await t.pool.query(
      `insert into mailer.email_attempts (outbox_id, attempt, outcome, http_status, error_code, kind)
       values ($1, 1, 'throttled', 429, 'TooManyRequests', null), ($1, 2, 'retry', null, 'timeout', 'attempt'),
              ($1, 2, 'lease_expired', null, 'lease_expired', 'stopped_looking_up'), ($1, 3, 'sent', 202, null, null)`,
      [id],
    )
    const r = await send(app, 'GET', `/v1/outbox/${id}`, { token: tk })
    expect(r.status).toBe(200)
    const body = r.body as Row & { history: Row[]; message: { subject: string } }
    expect(body.id).toBe(id)
    expect(body.message.subject).toBe('Hi')
    // Each entry says what it records (null: an entry of a release before 0189), a sent one an
    // attempt's (not stored).
    expect(body.history.map((h) => [h.attempt, h.outcome, h.httpStatus, h.kind])).toEqual([
      [1, 'throttled', 429, null],
      [2, 'retry', null, 'attempt'],
      [2, 'lease_expired', null, 'stopped_looking_up'],
      [3, 'sent', 202, 'attempt'],
    ])
  })

  test("a trigger row's sourceRow keeps its numbers as Postgres wrote them (12.50, a bigint past 2^53)", async () => {
    const { rows } = await t.pool.query(
      `insert into mailer.email_outbox (template, source_row)
       values ('order', '{"total": 12.50, "ref": 9007199254740993, "items": [{"price": 10.00}], "n": 3}')
       returning id::text`,
    )
    const path = `/v1/outbox/${rows[0].id}`
    expect((await send(app, 'GET', path, { token: tk })).status).toBe(200)
    const raw = await (
      await app.request(path, { headers: { authorization: `Bearer ${tk}` } })
    ).text()
    expect(raw).toContain(
      '"sourceRow":{"n":3,"ref":9007199254740993,"items":[{"price":10.00}],"total":12.50}',
    )
  })

  test('an unknown id is a 404 problem', async () => {
    const r = await send(app, 'GET', '/v1/outbox/123456', { token: tk })
    expect(r.status).toBe(404)
    expect(r.body).toMatchObject({ type: 'urn:outbox-mailer:problem:not_found', status: 404 })
  })

  test('every bigint id is accepted, up to 2^63-1, in paths, bulk filters and cursors', async () => {
    await t.pool.query(
      `select setval(pg_get_serial_sequence('mailer.email_outbox', 'id'), 999999999999999999)`,
    )
    const [first, second] = [await enqueueSql(t.pool), await enqueueSql(t.pool)]
    expect(first).toBe('1000000000000000000')
    const got = await send(app, 'GET', `/v1/outbox/${first}`, { token: tk })
    expect([got.status, (got.body as Row).id]).toEqual([200, first])
    const page = await send(app, 'GET', '/v1/outbox?limit=1', { token: tk })
    const { items, nextCursor } = page.body as { items: Row[]; nextCursor: string }
    expect(items.map((i) => i.id)).toEqual([second])
    const next = await send(app, 'GET', `/v1/outbox?limit=1&cursor=${nextCursor}`, { token: tk })
    expect([next.status, (next.body as { items: Row[] }).items.map((i) => i.id)]).toEqual([
      200,
      [first],
    ])
    const dry = await send(app, 'POST', '/v1/outbox/cancel', {
      token: tk,
      body: { filter: { ids: [first, '9223372036854775807'] }, dryRun: true },
    })
    expect([dry.status, (dry.body as { matched: number }).matched]).toEqual([200, 1])
    const max = await send(app, 'GET', '/v1/outbox/9223372036854775807', { token: tk })
    expect(max.status).toBe(404)
    for (const tooBig of ['9223372036854775808', '99999999999999999999']) {
      const r = await send(app, 'GET', `/v1/outbox/${tooBig}`, { token: tk })
      expect([tooBig, r.status, (r.body as { detail: string }).detail]).toEqual([
        tooBig,
        400,
        'id: must be at most 9223372036854775807 (no row has a larger id)',
      ])
    }
  })
})

describe('GET /v1/outbox/{id}: what the row sends, rendered as its worker renders it', () => {
  let rendering: App
  beforeAll(() => {
    rendering = appOnDefault(t, {
      mailFrom: 'Outbox <outbox@example.com>',
      allowedSenders: new Set(['outbox@example.com', 'billing@example.com']),
    }).app
  })
  const inquiry = () =>
    t.pool.query(
      `insert into mailer.templates (name, subject, text_body, html_body, to_addresses, cc_addresses, reply_to)
       values ('inquiry', 'Inquiry from {{name}}', '{{name}} wrote: {{note}}', '<p>{{name}} &amp; co</p>',
               '{sales@example.com}', '{"{{name}} <{{email}}>"}', '{{email}}')`,
    )
  const templateRow = async (
    template: string,
    source: Record<string, unknown>,
    tenant = 'default',
  ) =>
    (
      await t.pool.query(
        `insert into mailer.email_outbox (tenant, template, source_row) values ($1, $2, $3) returning id::text`,
        [tenant, template, JSON.stringify(source)],
      )
    ).rows[0].id as string
  const detail = async (id: string, tok = tk) => {
    const r = await send(rendering, 'GET', `/v1/outbox/${id}`, { token: tok })
    expect(r.status).toBe(200)
    return r.body as Row
  }

  test("a template's row shows its from, recipients, subject and bodies (rendered); message stays null", async () => {
    await inquiry()
    const id = await templateRow('inquiry', {
      name: 'Zoë',
      email: 'zoe@example.com',
      note: 'Call me',
    })
    const body = await detail(id)
    expect([body.message, body.renderError]).toEqual([null, null])
    expect(body.rendered).toEqual({
      from: { name: 'Outbox', address: 'outbox@example.com' },
      fromNote: null,
      to: [{ address: 'sales@example.com' }],
      cc: [{ name: 'Zoë', address: 'zoe@example.com' }],
      bcc: [],
      hiddenRecipients: null,
      replyTo: [{ address: 'zoe@example.com' }],
      subject: 'Inquiry from Zoë',
      bodiesIn: 'rendered',
      text: 'Zoë wrote: Call me',
      html: '<p>Zoë &amp; co</p>',
      // UTF-8 bytes, as Graph's 4 MB request counts them: ë is two.
      textBytes: 19,
      htmlBytes: 20,
      importance: null,
      headers: {},
      attachments: [],
    })
  })

  test('a row that cannot render now says why (renderError), as its worker would fail it', async () => {
    await inquiry()
    const gone = await templateRow('gone', { name: 'Ann' })
    const noColumn = await templateRow('inquiry', { name: 'Ann', email: 'ann@example.com' })
    await t.pool.query(
      `insert into mailer.templates (name, subject, text_body, to_addresses)
       values ('notify', 'Order', 'Shipped', '{"{{email}}"}')`,
    )
    const list = await templateRow('notify', { email: 'ann@example.com, bob@example.com' })
    const answers = await Promise.all([gone, noColumn, list].map((id) => detail(id)))
    expect(answers.map((b) => [b.rendered, b.renderError])).toEqual([
      [null, { code: 'template_not_found', message: 'template "gone" no longer exists' }],
      [null, { code: 'template_error', message: 'text_body: placeholder {{note}} has no column' }],
      [
        null,
        {
          code: 'template_error',
          // Worded by the database, as the row's lastError would be.
          message:
            'to_addresses[0] is not a valid e-mail address after rendering: it holds 2 addresses separated by , or ;: each entry of to_addresses renders one address: give each its own entry, filled from a column that holds one',
        },
      ],
    ])
  })

  test("a stored message's row shows what its worker sends: MAIL_FROM when it names none, files by name and size", async () => {
    const id = await enqueueSql(
      t.pool,
      {},
      {
        to: 'ada@example.com',
        subject: 'Invoice',
        text: '   ',
        html: '<p>Attached</p>',
        importance: 'high',
        headers: { 'X-Ref': 'r-1' },
        attachments: [{ filename: 'a.txt', contentBase64: 'aGVsbG8=', contentType: 'text/plain' }],
      },
    )
    const refused = await enqueueSql(t.pool, {}, { ...message, from: 'ceo@example.com' })
    const body = await detail(id)
    expect((body.message as { text: string }).text).toBe('   ')
    expect(body.rendered).toEqual({
      from: { name: 'Outbox', address: 'outbox@example.com' },
      fromNote: null,
      to: [{ address: 'ada@example.com' }],
      cc: [],
      bcc: [],
      hiddenRecipients: null,
      replyTo: [],
      subject: 'Invoice',
      // The bodies are message's, as stored: a blank text beside an html is not sent (shownBodies),
      // its size null.
      bodiesIn: 'message',
      text: null,
      html: null,
      textBytes: null,
      htmlBytes: 15,
      importance: 'high',
      headers: { 'X-Ref': 'r-1' },
      attachments: [{ filename: 'a.txt', contentType: 'text/plain', contentId: null, bytes: 5 }],
    })
    expect(body.renderError).toBeNull()
    expect((await detail(refused)).renderError).toEqual({
      code: 'sender_not_allowed',
      message: 'message.from names a mailbox MAIL_FROM_ALLOWED does not list: not sent',
    })
  })

  test('a row inserted around enqueue_email whose file is not base64 shows the invalid_message its worker fails it with: each read checks the files', async () => {
    // The application's role may insert rows itself (the deploy guide grants it insert, as
    // enqueue_email runs with its rights), and an older release's enqueue took what 0024 and 0029
    // refuse: no row says its message was checked, so the read checks each file as the worker does.
    const stored = { to: [{ address: 'ada@example.com' }], subject: 'Scan', text: 'Attached' }
    const ids: string[] = []
    for (const contentBase64 of ['aGVsbG8=', 'not base64!?', 'aGVsbG8']) {
      const attachments = [{ filename: 'scan.pdf', contentBase64 }]
      const { rows } = await t.pool.query(
        'insert into mailer.email_outbox (message) values ($1) returning id::text',
        [JSON.stringify({ ...stored, attachments })],
      )
      ids.push(rows[0].id)
    }
    const answers = await Promise.all(ids.map((id) => detail(id)))
    expect(answers.map((b) => b.renderError)).toEqual([
      null,
      {
        code: 'invalid_message',
        message:
          'message.attachments[0] must be {"filename", "contentBase64", "contentType"?, "contentId"?} with base64 content',
      },
      {
        code: 'invalid_message',
        message:
          'message.attachments[0].contentBase64 must be whole groups of four base64 characters (pad the last with =); this holds 7',
      },
    ])
    // Checked at each read, not once: the file read fine, then changed by hand to URL-safe base64
    // (whole groups of four, a letter outside the standard alphabet), is refused at the next read.
    await t.pool.query(
      `update mailer.email_outbox set message = jsonb_set(message, '{attachments,0,contentBase64}', '"aGVsbG8_"') where id = $1`,
      [ids[0]],
    )
    expect((await detail(ids[0] as string)).renderError).toEqual(answers[1]?.renderError)
  })

  test("a stored message's row carries each body once, in message: rendered says so (bodiesIn) and keeps their sizes", async () => {
    // 100 KB bodies of two-byte letters, and a file: the answer repeated both bodies in rendered.
    const text = `Scan attached. ${'é'.repeat(50_000)}`
    const html = `<p>${'ü'.repeat(50_000)}</p>`
    const file = Buffer.alloc(30_000, 'scan').toString('base64')
    const id = await enqueueSql(
      t.pool,
      {},
      { ...message, text, html, attachments: [{ filename: 'scan.pdf', contentBase64: file }] },
    )
    const answer = await rendering.request(`/v1/outbox/${id}`, { headers: bearer(tk) })
    const raw = await answer.text()
    expect([answer.status, raw.split(text).length - 1, raw.split(html).length - 1]).toEqual([
      200, 1, 1,
    ])
    // The bodies and the file once, and the rest of the row: under 4 KB besides.
    expect(Buffer.byteLength(raw)).toBeLessThan(
      Buffer.byteLength(text) + Buffer.byteLength(html) + file.length + 4096,
    )
    const { rendered } = JSON.parse(raw) as { rendered: Row }
    expect(rendered).toMatchObject({
      bodiesIn: 'message',
      text: null,
      html: null,
      textBytes: 100_015,
      htmlBytes: 100_007,
    })
  })

  test("a stored message's bodies render as stored, byte for byte, or are not sent: what bodiesIn: message rests on", async () => {
    const bodies = [
      ...NOT_BLANK_BODIES.map(([, body]) => body),
      'CR LF\r\nlines\r\n, a lone CR\r and LF\n, tabs\t and trailing blanks \u00a0 ',
      `a line of 2,000 characters, never wrapped: ${'x'.repeat(2000)}`,
      'e\u0301 (decomposed: not normalised to é), \ufb01 (a ligature), 😀, \u200d, \u202e',
      '<p style="color:red">Ünïcode &amp; entities &nbsp; <!-- a comment --></p>',
    ]
    const rows = [
      ...bodies.flatMap((body) => [{ text: body }, { html: body }, { text: body, html: body }]),
      // A blank one beside a body is not sent (shownBodies): its size null, never another body.
      ...BLANK_BODIES.flatMap(([, blank]) => [
        { text: blank, html: '<p>Hi</p>' },
        { text: 'Hi', html: blank },
      ]),
    ]
    const ids = await Promise.all(
      rows.map((b) => enqueueSql(t.pool, {}, { ...message, text: undefined, ...b })),
    )
    const stored = await t.pool.query<{ id: string; message: { text?: string; html?: string } }>(
      `select id::text, message from mailer.email_outbox where id = any($1::bigint[]) order by id`,
      [ids],
    )
    const problems = stored.rows.flatMap(({ id, message: m }) => {
      const mail = renderLease(
        {
          id,
          tenant: 'default',
          attempt: 1,
          correlationId: null,
          message: m,
          template: null,
          sourceRow: null,
        },
        new Map(),
        'outbox@example.com',
      )
      const shown = shownBodies({ text: m.text ?? null, html: m.html ?? null })
      return [
        ['text', mail.text, m.text, shown.text],
        ['html', mail.html, m.html, shown.html],
      ].flatMap(([field, sent, kept, expected]) =>
        sent === expected && (sent === null || sent === kept) ? [] : [{ id, field, sent, kept }],
      )
    })
    expect([stored.rows.length, problems]).toEqual([rows.length, []])
  })

  test("a row keeping an interrupted send's mark that cannot render says, as its worker would fail it, that the earlier send may have delivered it", async () => {
    const gone = await templateRow('gone', { name: 'Ann' })
    const refused = await enqueueSql(t.pool, {}, { ...message, from: 'ceo@example.com' })
    // Its send timed out (the mark kept); then failed, as its retry's worker will render it again.
    await t.pool.query(
      `update mailer.email_outbox set send_started_at = now() - interval '1 minute' where id = any($1::bigint[])`,
      [[gone, refused]],
    )
    await t.pool.query(
      `update mailer.email_outbox set status = 'failed', last_error_code = 'timeout' where id = $1`,
      [refused],
    )
    const answers = await Promise.all([gone, refused].map((id) => detail(id)))
    // The words interrupted-send-unrenderable.test.ts holds the worker's failure to.
    expect(answers.map((b) => b.renderError)).toEqual([
      {
        code: 'template_not_found',
        message:
          'template "gone" no longer exists: not sent again; an earlier interrupted send may have delivered it',
      },
      {
        code: 'sender_not_allowed',
        message:
          'message.from names a mailbox MAIL_FROM_ALLOWED does not list: not sent again; an earlier interrupted send may have delivered it',
      },
    ])
  })

  test("a token confined to a tenant is not shown the recipients a template names itself (an internal bcc), only how many; the admin's token sees each", async () => {
    await t.pool.query(
      `insert into mailer.templates (name, subject, text_body, to_addresses, cc_addresses, bcc_addresses)
       values ('desk', 'Ticket {{ref}}', 'Opened', '{"{{name}} <{{email}}>", "Sales <sales@example.com>"}',
               '{"{{manager}}", "audit+{{ref}}@ops.example", "Desk <{{desk}}>"}', '{archive@ops.example, "{{{copy}}}"}')`,
    )
    // No manager, no copy: those entries render no address, and are no recipient to count.
    const source = {
      name: 'Ann',
      email: 'ann@example.com',
      manager: null,
      ref: 'r7',
      desk: 'desk@example.com',
      copy: '',
    }
    const id = await templateRow('desk', source, 'acme')
    const stored = await enqueueSql(
      t.pool,
      { tenant: 'acme' },
      { ...message, bcc: 'boss@example.com' },
    )
    const acme = await token({ tenant: 'acme' })
    const shown = async (row: string, tok: string) => {
      const r = await rendering.request(`/v1/outbox/${row}`, { headers: bearer(tok) })
      const raw = await r.text()
      const { to, cc, bcc, hiddenRecipients } = (JSON.parse(raw) as { rendered: Row }).rendered
      return {
        to,
        cc,
        bcc,
        hiddenRecipients,
        // The operator's addresses anywhere in the answer.
        operators: ['sales@example.com', '@ops.example'].filter((a) => raw.includes(a)),
      }
    }
    expect(await shown(id, tk)).toEqual({
      to: [
        { name: 'Ann', address: 'ann@example.com' },
        { name: 'Sales', address: 'sales@example.com' },
      ],
      cc: [{ address: 'audit+r7@ops.example' }, { name: 'Desk', address: 'desk@example.com' }],
      bcc: [{ address: 'archive@ops.example' }],
      hiddenRecipients: null,
      operators: ['sales@example.com', '@ops.example'],
    })
    expect(await shown(id, acme)).toEqual({
      to: [{ name: 'Ann', address: 'ann@example.com' }],
      cc: [{ name: 'Desk', address: 'desk@example.com' }],
      bcc: [],
      hiddenRecipients: { to: 1, cc: 1, bcc: 1 },
      operators: [],
    })
    // Its own message's recipients are the tenant's: each shown.
    expect(await shown(stored, acme)).toMatchObject({
      bcc: [{ address: 'boss@example.com' }],
      hiddenRecipients: null,
    })
  })

  test("a template's own recipient Graph refused is named in no error text a tenant's token reads: lastError, history, the list", async () => {
    await t.pool.query(
      `insert into mailer.templates (name, subject, text_body, to_addresses, bcc_addresses)
       values ('audited', 'Ticket {{ref}}', 'Opened', '{"{{email}}"}', '{"audit+{{ref}}@ops.example"}')`,
    )
    // Graph quotes the recipient it cannot resolve; an apostrophe is an address's as any letter.
    const hidden = ['audit+r7@ops.example', "audit+o'hara@ops.example"]
    const fake = await startFakeGraph({ clientSecret: 'right', rejectRecipients: hidden })
    const ids = [
      await templateRow('audited', { email: 'ann@example.com', ref: 'r7' }, 'acme'),
      await templateRow('audited', { email: 'ann@example.com', ref: "o'hara" }, 'acme'),
    ]
    const worker = graphWorker(t, fake, {
      workerId: 'w-hidden',
      mailFrom: 'outbox@example.com',
      graceSeconds: 1,
      lookups: false,
    })
    await worker.start()
    try {
      await pollUntil(async () => {
        const { rows } = await t.pool.query(
          `select count(*)::int as n from mailer.email_outbox where status = 'failed'`,
        )
        return rows[0].n === 2 ? true : undefined
      })
    } finally {
      await worker.stop()
      await fake.stop()
    }
    const refused =
      "At least one recipient isn't valid., Recipient '[address]' isn't resolved. All recipients must be resolved before a message can be submitted."
    const acme = await token({ tenant: 'acme' })
    for (const tok of [acme, tk]) {
      const list = await rendering.request('/v1/outbox?status=failed', { headers: bearer(tok) })
      const answers = [await list.text()]
      for (const id of ids) {
        const r = await rendering.request(`/v1/outbox/${id}`, { headers: bearer(tok) })
        const raw = await r.text()
        answers.push(raw)
        const row = JSON.parse(raw) as Row & { history: { error: string | null }[] }
        expect([row.lastErrorCode, row.lastError, row.history.map((h) => h.error)]).toEqual([
          'ErrorInvalidRecipients',
          refused,
          [refused],
        ])
      }
      // Neither address, nor the template's part of it, in any answer to the tenant's token (the
      // row's own part, its ref, is in its sourceRow); the admin's is shown them in rendered.bcc.
      if (tok === acme) for (const raw of answers) expect(raw).not.toMatch(/audit\+|ops\.example/)
    }
    // A retry answers the row with its last error kept (requeue.ts): the same words.
    const retried = await send(rendering, 'POST', `/v1/outbox/${ids[1]}/retry`, { token: acme })
    expect([retried.status, (retried.body as Row).lastError]).toEqual([200, refused])
  })

  test("a tenant's token sees its own row rendered and another tenant's not at all; a list renders none", async () => {
    await inquiry()
    const source = { name: 'Ann', email: 'ann@example.com', note: 'x' }
    const own = await templateRow('inquiry', source, 'acme')
    const other = await templateRow('inquiry', source, 'globex')
    const acme = await token({ tenant: 'acme' })
    expect(((await detail(own, acme)).rendered as { subject: string }).subject).toBe(
      'Inquiry from Ann',
    )
    const r = await send(rendering, 'GET', `/v1/outbox/${other}`, { token: acme })
    expect(r.status).toBe(404)
    const list = await send(rendering, 'GET', '/v1/outbox', { token: tk })
    for (const item of (list.body as { items: Row[] }).items) {
      expect(item).not.toHaveProperty('rendered')
      expect(item).not.toHaveProperty('renderError')
    }
  })
})

describe('GET /v1/outbox/{id} on a process that sends nothing (serve --role api): the sender it cannot know', () => {
  /** Row `id` as a `serve --role api` process with `env` (MAIL_FROM's) renders it: rendered and renderError. */
  async function onApiProcess(env: Record<string, string>, ids: string[]) {
    const running = await serve(
      loadConfig(
        {
          DATABASE_URL: t.url,
          API_JWT_SECRET: SECRET,
          API_JWT_ISSUER: ISSUER,
          API_JWT_AUDIENCE: AUDIENCE,
          HOST: '127.0.0.1',
          PORT: '0',
          ...env,
        },
        { role: 'api', servesApi: true },
      ),
      { role: 'api', log: silentLogger },
    )
    try {
      return await Promise.all(
        ids.map(async (id) => {
          const r = await fetch(`http://127.0.0.1:${running.port}/v1/outbox/${id}`, {
            headers: bearer(tk),
          })
          expect(r.status).toBe(200)
          const { rendered, renderError } = (await r.json()) as {
            rendered: { from: unknown; fromNote: unknown; subject: string } | null
            renderError: unknown
          }
          return [rendered?.from, rendered?.fromNote, rendered?.subject, renderError]
        }),
      )
    } finally {
      await running.stop('test')
    }
  }
  const UNKNOWN =
    "the row names no sender: its worker sends it from the workers' MAIL_FROM, which this process (serve --role api, which sends nothing) cannot tell:"

  test("without MAIL_FROM, or with one that is no address, a row naming no sender shows everything but its sender (from null, and why), not no_sender or template_error; a row naming its own shows it, and a usable MAIL_FROM is taken for the workers'", async () => {
    const none = await enqueueSql(t.pool, {}, message)
    const own = await enqueueSql(t.pool, {}, { ...message, from: 'Desk <desk@example.com>' })
    expect(await onApiProcess({}, [none, own])).toEqual([
      [null, `${UNKNOWN} it has no MAIL_FROM`, 'Hello', null],
      [{ name: 'Desk', address: 'desk@example.com' }, null, 'Hello', null],
    ])
    // A process that drains (here without MAIL_FROM) fails it so itself: no_sender stands there.
    const drains = await send(app, 'GET', `/v1/outbox/${none}`, { token: tk })
    expect((drains.body as Row).renderError).toEqual({
      code: 'no_sender',
      message: 'no from address on the row and MAIL_FROM is not set',
    })
    expect(await onApiProcess({ MAIL_FROM: 'Outbox <outbox@>' }, [none])).toEqual([
      [
        null,
        `${UNKNOWN} its MAIL_FROM is no address a worker could send from (MAIL_FROM: must be an e-mail address ("Name <address>" is fine) or a Graph user id (a GUID))`,
        'Hello',
        null,
      ],
    ])
    // One a worker could send from is taken for theirs (the deploy guide: keep it the workers').
    expect(await onApiProcess({ MAIL_FROM: 'Outbox <outbox@example.com>' }, [none])).toEqual([
      [{ name: 'Outbox', address: 'outbox@example.com' }, null, 'Hello', null],
    ])
  })
})

describe('cancel', () => {
  test('a pending row is cancelled at once (200)', async () => {
    const id = await enqueueSql(t.pool)
    const r = await send(app, 'POST', `/v1/outbox/${id}/cancel`, { token: tk })
    expect(r.status).toBe(200)
    expect(r.body).toMatchObject({ id, status: 'cancelled' })
    expect((r.body as Row).cancelRequestedAt).toBeString()
  })

  test('a sending row records the request for its worker (202) and stays sending', async () => {
    const id = await enqueueSql(t.pool)
    await setState(t.pool, id, 'sending')
    const r = await send(app, 'POST', `/v1/outbox/${id}/cancel`, { token: tk })
    expect(r.status).toBe(202)
    expect(r.body).toMatchObject({ id, status: 'sending', sendStartedAt: null })
    const first = (r.body as Row).cancelRequestedAt
    const again = await send(app, 'POST', `/v1/outbox/${id}/cancel`, { token: tk })
    expect(again.status).toBe(202)
    expect((again.body as Row).cancelRequestedAt).toBe(first)
  })

  test('a sending row whose send has started answers 409 send_started and is not stamped', async () => {
    const id = await enqueueSql(t.pool)
    await setState(t.pool, id, 'sending', { sendStarted: true })
    const r = await send(app, 'POST', `/v1/outbox/${id}/cancel`, { token: tk })
    expect(r.status).toBe(409)
    expect(r.body).toMatchObject({
      type: 'urn:outbox-mailer:problem:send_started',
      title: 'The send has already started',
    })
    const { rows } = await t.pool.query(
      'select status, cancel_requested_at from mailer.email_outbox where id = $1',
      [id],
    )
    expect(rows).toEqual([{ status: 'sending', cancel_requested_at: null }])
  })

  test('a pending row left by an interrupted send (send_started_at kept): the cancel is recorded (202), the row left pending and due now for its worker to look that send up', async () => {
    const id = await enqueueSql(t.pool)
    // Its interrupted send's retry is due in an hour.
    await t.pool.query(
      `update mailer.email_outbox set attempts = 1, send_started_at = now() - interval '5 minutes',
              send_at = now() + interval '1 hour'
        where id = $1`,
      [id],
    )
    const l = await listen()
    try {
      const r = await send(app, 'POST', `/v1/outbox/${id}/cancel`, { token: tk })
      expect(r.status).toBe(202)
      expect(r.body).toMatchObject({ id, status: 'pending' })
      const first = (r.body as Row).cancelRequestedAt
      expect(first).toBeString()
      // A worker waiting for the hour is woken to claim it now.
      await l.next
      const again = await send(app, 'POST', `/v1/outbox/${id}/cancel`, { token: tk })
      expect(again.status).toBe(202)
      expect((again.body as Row).cancelRequestedAt).toBe(first)
    } finally {
      await l.close()
    }
    const { rows } = await t.pool.query(
      `select status, send_at <= now() as due, send_started_at is not null as marked
         from mailer.email_outbox where id = $1`,
      [id],
    )
    expect(rows).toEqual([{ status: 'pending', due: true, marked: true }])
    // Nothing settled it: its worker records the outcome.
    expect(
      (
        await t.pool.query(
          'select count(*)::int as n from mailer.email_attempts where outbox_id = $1',
          [id],
        )
      ).rows[0].n,
    ).toBe(0)
  })

  test('a repeated cancel of a pending row whose cancel is recorded (its lookup waiting to look again) answers 202 with the row as it is: its due time not moved, no worker woken', async () => {
    const id = await enqueueSql(t.pool)
    // Cancelled earlier; its worker found it too early to look its interrupted send up, and it
    // waits an hour to look again.
    await t.pool.query(
      `update mailer.email_outbox set attempts = 1, send_started_at = now() - interval '5 minutes',
              cancel_requested_at = now() - interval '1 minute', send_at = now() + interval '1 hour',
              last_error_code = 'lookup_too_early'
        where id = $1`,
      [id],
    )
    const before = await send(app, 'GET', `/v1/outbox/${id}`, { token: tk })
    // The detail's own fields: the cancel answers the row's summary.
    const { history, message, sourceRow, rendered, renderError, mayHaveBeenDelivered, ...row } =
      before.body as Record<string, unknown>
    const l = await listen()
    try {
      const again = await send(app, 'POST', `/v1/outbox/${id}/cancel`, { token: tk })
      expect([again.status, again.body]).toEqual([202, row])
      // Notifications arrive in commit order: a wake sent by the cancel would come first.
      await t.pool.query(`select pg_notify('mailer_outbox', 'after the cancel')`)
      expect(await l.next).toBe('after the cancel')
    } finally {
      await l.close()
    }
    const { rows } = await t.pool.query(
      `select send_at > now() + interval '50 minutes' as later from mailer.email_outbox where id = $1`,
      [id],
    )
    expect(rows).toEqual([{ later: true }])
  })

  test('a pending row with a cancel recorded and no interrupted send (left so by an older binary) is cancelled at once (200)', async () => {
    const id = await enqueueSql(t.pool)
    await t.pool.query(
      `update mailer.email_outbox set cancel_requested_at = now() - interval '1 minute' where id = $1`,
      [id],
    )
    const r = await send(app, 'POST', `/v1/outbox/${id}/cancel`, { token: tk })
    expect([r.status, (r.body as Row).status]).toEqual([200, 'cancelled'])
  })

  test('a send that starts while a cancel waits for the row lock turns the cancel away', async () => {
    const id = await enqueueSql(t.pool)
    await setState(t.pool, id, 'sending')
    // The worker's last check: its transaction holds the row while it records the send started.
    const worker = await holdRowLocked(t.pool, id)
    try {
      await worker.client.query(
        'update mailer.email_outbox set send_started_at = now() where id = $1',
        [id],
      )
      const cancelling = send(app, 'POST', `/v1/outbox/${id}/cancel`, { token: tk })
      await untilLockWaits(t.pool)
      await worker.end('commit')
      const r = await cancelling
      expect(r.status).toBe(409)
      expect((r.body as { type: string }).type).toBe('urn:outbox-mailer:problem:send_started')
      const { rows } = await t.pool.query(
        'select cancel_requested_at from mailer.email_outbox where id = $1',
        [id],
      )
      expect(rows[0].cancel_requested_at).toBeNull()
    } finally {
      await worker.end('rollback')
    }
  })

  test('sent, failed and cancelled rows answer 409', async () => {
    for (const state of ['sent', 'failed', 'cancelled'] as const) {
      const id = await enqueueSql(t.pool)
      await setState(t.pool, id, state)
      const r = await send(app, 'POST', `/v1/outbox/${id}/cancel`, { token: tk })
      expect([state, r.status]).toEqual([state, 409])
      expect((r.body as { type: string }).type).toBe('urn:outbox-mailer:problem:conflict')
    }
  })
})

describe('retry', () => {
  test('a failed row goes back to pending with attempts reset and its last error kept', async () => {
    const id = await enqueueSql(t.pool)
    await setState(t.pool, id, 'failed')
    const l = await listen()
    try {
      const r = await send(app, 'POST', `/v1/outbox/${id}/retry`, { token: tk })
      expect(r.status).toBe(200)
      expect(r.body).toMatchObject({
        id,
        status: 'pending',
        attempts: 0,
        lastErrorCode: 'ErrorInvalidRecipients',
      })
      await l.next
    } finally {
      await l.close()
    }
  })

  test('a cancelled row can be retried; pending, sending and sent rows cannot', async () => {
    const cancelled = await enqueueSql(t.pool)
    await setState(t.pool, cancelled, 'cancelled')
    expect((await send(app, 'POST', `/v1/outbox/${cancelled}/retry`, { token: tk })).status).toBe(
      200,
    )
    const pending = await enqueueSql(t.pool)
    expect((await send(app, 'POST', `/v1/outbox/${pending}/retry`, { token: tk })).status).toBe(409)
    const sent = await enqueueSql(t.pool)
    await setState(t.pool, sent, 'sent')
    expect((await send(app, 'POST', `/v1/outbox/${sent}/retry`, { token: tk })).status).toBe(409)
    expect((await send(app, 'POST', '/v1/outbox/424242/retry', { token: tk })).status).toBe(404)
  })

  test('a requeued row keeps a future sendAt; a failed row, due in the past, is due now', async () => {
    const scheduled = await enqueueSql(t.pool, { sendAt: '2030-01-01T09:00:00Z' })
    const again = await enqueueSql(t.pool, { sendAt: '2030-01-01T09:00:00Z' })
    const failed = await enqueueSql(t.pool)
    await setState(t.pool, scheduled, 'cancelled')
    await setState(t.pool, again, 'cancelled')
    await setState(t.pool, failed, 'failed')
    await t.pool.query(
      `update mailer.email_outbox set send_at = now() - interval '1 hour' where id = $1`,
      [failed],
    )
    const one = await send(app, 'POST', `/v1/outbox/${scheduled}/retry`, { token: tk })
    expect([one.status, (one.body as Row).sendAt]).toEqual([200, '2030-01-01T09:00:00.000Z'])
    const bulk = await send(app, 'POST', '/v1/outbox/retry', {
      token: tk,
      body: { filter: { ids: [again, failed] } },
    })
    expect((bulk.body as { matched: number }).matched).toBe(2)
    const { rows } = await t.pool.query(
      `select id::text, send_at = '2030-01-01T09:00:00Z' as kept,
              send_at between now() - interval '1 minute' and now() as now
         from mailer.email_outbox where id = any($1::bigint[]) order by id`,
      [[again, failed]],
    )
    expect(rows).toEqual([
      { id: again, kept: true, now: false },
      { id: failed, kept: false, now: true },
    ])
  })

  test('a row that fails just after a retry found it sending is requeued, not called expired', async () => {
    const id = await enqueueSql(t.pool)
    await setState(t.pool, id, 'sending')
    // The worker settles the row between the retry's update (which found it sending) and its look
    // at why: the moment a real worker's settlement can land in.
    let settled = false
    // The retry's statement: its update is a CTE (with the owed probe's hint, probe-due-hint.ts).
    const requeues = new Set<unknown>()
    const racing = t.db.withPlugin({
      transformQuery: (a) => {
        if (a.node.kind === 'SelectQueryNode' && a.node.with !== undefined) requeues.add(a.queryId)
        return a.node
      },
      transformResult: async (a) => {
        if (!settled && requeues.has(a.queryId) && a.result.rows.length === 0) {
          settled = true
          await t.pool.query(
            `update mailer.email_outbox set status = 'failed', last_error_code = 'ErrorInvalidRecipients',
               lease_owner = null, lease_token = null, lease_expires_at = null where id = $1`,
            [id],
          )
        }
        return a.result
      },
    })
    const raced = buildApp([{ name: 'default', db: racing, pool: t.pool }]).app
    const r = await send(raced, 'POST', `/v1/outbox/${id}/retry`, { token: tk })
    expect(settled).toBe(true)
    expect([r.status, (r.body as Row).status]).toEqual([200, 'pending'])
  })

  test('an expired row is never requeued', async () => {
    const id = await enqueueSql(t.pool, { expiresAt: '2099-01-01T00:00:00Z' })
    await t.pool.query(
      `update mailer.email_outbox set status = 'failed', last_error_code = 'expired', send_at = now() - interval '2 hours',
         expires_at = now() - interval '1 hour' where id = $1`,
      [id],
    )
    const r = await send(app, 'POST', `/v1/outbox/${id}/retry`, { token: tk })
    expect(r.status).toBe(409)
    expect((r.body as { detail: string }).detail).toContain('never sent late')
  })
})

describe('bulk actions', () => {
  test('bulk cancel: a dry run counts, the real run reports each row, a repeat finds nothing', async () => {
    const [p1, p2, s1, done] = [
      await enqueueSql(t.pool, { correlationId: 'batch' }),
      await enqueueSql(t.pool, { correlationId: 'batch' }),
      await enqueueSql(t.pool, { correlationId: 'batch' }),
      await enqueueSql(t.pool, { correlationId: 'batch' }),
    ]
    await setState(t.pool, s1!, 'sending')
    await setState(t.pool, done!, 'sent')
    const body = { filter: { correlationId: 'batch' } }
    const dry = await send(app, 'POST', '/v1/outbox/cancel', {
      token: tk,
      body: { ...body, dryRun: true },
    })
    expect(dry.body).toEqual({ dryRun: true, matched: 3, items: [], more: false })
    const real = await send(app, 'POST', '/v1/outbox/cancel', { token: tk, body })
    expect(real.body).toEqual({
      dryRun: false,
      matched: 3,
      items: [
        { id: p1, outcome: 'cancelled' },
        { id: p2, outcome: 'cancelled' },
        { id: s1, outcome: 'cancel_requested' },
      ],
      more: false,
      cancelled: 2,
      cancelRequested: 1,
    })
    const repeat = await send(app, 'POST', '/v1/outbox/cancel', { token: tk, body })
    expect((repeat.body as { matched: number }).matched).toBe(0)
  })

  test('bulk cancel leaves rows whose send has started, and records the cancel of interrupted pending ones for their worker', async () => {
    const started = await enqueueSql(t.pool, { correlationId: 'b' })
    const claimed = await enqueueSql(t.pool, { correlationId: 'b' })
    const interrupted = await enqueueSql(t.pool, { correlationId: 'b' })
    await setState(t.pool, started, 'sending', { sendStarted: true })
    await setState(t.pool, claimed, 'sending')
    await t.pool.query(
      `update mailer.email_outbox set attempts = 1, send_started_at = now() where id = $1`,
      [interrupted],
    )
    const body = { filter: { correlationId: 'b' } }
    const dry = await send(app, 'POST', '/v1/outbox/cancel', {
      token: tk,
      body: { ...body, dryRun: true },
    })
    expect((dry.body as { matched: number }).matched).toBe(2)
    const real = await send(app, 'POST', '/v1/outbox/cancel', { token: tk, body })
    expect(real.body).toEqual({
      dryRun: false,
      matched: 2,
      items: [
        { id: claimed, outcome: 'cancel_requested' },
        { id: interrupted, outcome: 'cancel_requested' },
      ],
      more: false,
      cancelled: 0,
      cancelRequested: 2,
      // The row whose send had started, left: named, should its send fail and it be pending again.
      leftSending: [started],
    })
    const { rows } = await t.pool.query(
      `select id, status, cancel_requested_at is not null as requested from mailer.email_outbox
        where id = any($1::bigint[]) order by id`,
      [[started, interrupted]],
    )
    expect(rows).toEqual([
      { id: started, status: 'sending', requested: false },
      { id: interrupted, status: 'pending', requested: true },
    ])
    // Its worker waits to look the interrupted send up again in an hour.
    await t.pool.query(
      `update mailer.email_outbox set send_at = now() + interval '1 hour' where id = $1`,
      [interrupted],
    )
    // Both recorded: a repeat finds nothing (a bulk cancel repeated while `more` ends), and moves
    // no due time (as a repeated single cancel).
    const repeat = await send(app, 'POST', '/v1/outbox/cancel', { token: tk, body })
    expect((repeat.body as { matched: number }).matched).toBe(0)
    const { rows: later } = await t.pool.query(
      `select send_at > now() + interval '50 minutes' as later from mailer.email_outbox where id = $1`,
      [interrupted],
    )
    expect(later).toEqual([{ later: true }])
  })

  test('bulk cancel cancels at once a pending row with a cancel recorded and no interrupted send (left so by an older binary), as a single cancel does', async () => {
    const id = await enqueueSql(t.pool, { correlationId: 'older' })
    await t.pool.query(
      `update mailer.email_outbox set cancel_requested_at = now() - interval '1 minute' where id = $1`,
      [id],
    )
    const body = { filter: { correlationId: 'older' } }
    const real = await send(app, 'POST', '/v1/outbox/cancel', { token: tk, body })
    expect((real.body as { items: unknown[] }).items).toEqual([{ id, outcome: 'cancelled' }])
    const { rows } = await t.pool.query(`select status from mailer.email_outbox where id = $1`, [
      id,
    ])
    expect(rows).toEqual([{ status: 'cancelled' }])
  })

  test('bulk cancel works in batches of `limit`', async () => {
    for (let i = 0; i < 3; i++) await enqueueSql(t.pool)
    const body = { filter: { status: ['pending'] }, limit: 2 }
    const first = await send(app, 'POST', '/v1/outbox/cancel', { token: tk, body })
    expect(first.body).toMatchObject({ matched: 2, more: true })
    const second = await send(app, 'POST', '/v1/outbox/cancel', { token: tk, body })
    expect(second.body).toMatchObject({ matched: 1, more: false })
  })

  test('a bulk limit is 1 to 1000 rows: past either bound is a 400 naming it, and nothing changes', async () => {
    const id = await enqueueSql(t.pool)
    const answers: [string, number, number, string | undefined][] = []
    for (const url of ['/v1/outbox/cancel', '/v1/outbox/retry'])
      for (const limit of [0, 1001]) {
        const r = await send(app, 'POST', url, {
          token: tk,
          body: { filter: { ids: [id] }, limit },
        })
        answers.push([
          url,
          limit,
          r.status,
          (r.body as { errors?: { path: string }[] }).errors?.[0]?.path,
        ])
      }
    expect(answers).toEqual([
      ['/v1/outbox/cancel', 0, 400, 'limit'],
      ['/v1/outbox/cancel', 1001, 400, 'limit'],
      ['/v1/outbox/retry', 0, 400, 'limit'],
      ['/v1/outbox/retry', 1001, 400, 'limit'],
    ])
    const row = await t.pool.query('select status from mailer.email_outbox where id = $1', [id])
    expect(row.rows).toEqual([{ status: 'pending' }])
  })

  test('bulk retry requeues failed and cancelled rows, leaving expired ones', async () => {
    const failed = await enqueueSql(t.pool)
    const cancelled = await enqueueSql(t.pool)
    const expired = await enqueueSql(t.pool)
    await setState(t.pool, failed, 'failed')
    await setState(t.pool, cancelled, 'cancelled')
    await t.pool.query(
      `update mailer.email_outbox set status = 'failed', send_at = now() - interval '2 hours', expires_at = now() - interval '1 hour' where id = $1`,
      [expired],
    )
    const onlyFailed = await send(app, 'POST', '/v1/outbox/retry', {
      token: tk,
      body: { filter: { status: ['failed'] }, dryRun: true },
    })
    expect((onlyFailed.body as { matched: number }).matched).toBe(1)
    const r = await send(app, 'POST', '/v1/outbox/retry', {
      token: tk,
      body: { filter: { status: ['failed', 'cancelled'] } },
    })
    expect((r.body as { items: unknown[] }).items).toEqual([
      { id: failed, outcome: 'requeued' },
      { id: cancelled, outcome: 'requeued' },
    ])
    const left = await t.pool.query('select status from mailer.email_outbox where id = $1', [
      expired,
    ])
    expect(left.rows[0].status).toBe('failed')
  })

  test('an empty filter or a status outside the action is refused', async () => {
    expect(
      (await send(app, 'POST', '/v1/outbox/cancel', { token: tk, body: { filter: {} } })).status,
    ).toBe(400)
    const wrong = await send(app, 'POST', '/v1/outbox/cancel', {
      token: tk,
      body: { filter: { status: ['failed'] } },
    })
    expect(wrong.status).toBe(400)
  })
})

describe('GET /v1/stats', () => {
  test('counts rows by status and reports the oldest due pending age in database time', async () => {
    const old = await enqueueSql(t.pool)
    await enqueueSql(t.pool, { sendAt: '2099-01-01T00:00:00Z' })
    const sent = await enqueueSql(t.pool)
    await setState(t.pool, sent, 'sent')
    await t.pool.query(
      `update mailer.email_outbox set send_at = now() - interval '90 seconds' where id = $1`,
      [old],
    )
    const r = await send(app, 'GET', '/v1/stats', { token: tk })
    const db = (
      r.body as {
        databases: {
          name: string
          counts: Record<string, number>
          oldestPendingAgeSeconds: number
        }[]
      }
    ).databases[0]!
    expect(db.name).toBe('default')
    expect(db.counts).toEqual({ pending: 2, sending: 0, sent: 1, failed: 0, cancelled: 0 })
    expect(db.oldestPendingAgeSeconds).toBeGreaterThanOrEqual(90)
    expect(db.oldestPendingAgeSeconds).toBeLessThan(200)
  })

  test('with nothing waiting the age is null', async () => {
    const r = await send(app, 'GET', '/v1/stats', { token: tk })
    expect(
      (r.body as { databases: { oldestPendingAgeSeconds: null }[] }).databases[0]!
        .oldestPendingAgeSeconds,
    ).toBeNull()
  })
})

describe('several databases', () => {
  test('?db= selects one, is required by row routes, and stats reports each', async () => {
    const second = await createTestDb()
    try {
      const multi = buildApp([
        { name: 'main', db: t.db, pool: t.pool },
        { name: 'second', db: second.db, pool: second.pool },
      ]).app
      const id = await enqueueSql(second.pool, { correlationId: 'in-second' })
      const listed = await send(multi, 'GET', '/v1/outbox?db=second', { token: tk })
      expect((listed.body as { items: Row[] }).items.map((i) => i.id)).toEqual([id])
      expect((await send(multi, 'GET', '/v1/outbox?db=main', { token: tk })).body).toEqual({
        items: [],
        nextCursor: null,
      })
      const missing = await send(multi, 'GET', '/v1/outbox', { token: tk })
      expect(missing.status).toBe(400)
      expect((missing.body as { detail: string }).detail).toContain('main, second')
      const stats = await send(multi, 'GET', '/v1/stats', { token: tk })
      expect(
        (stats.body as { databases: { name: string }[] }).databases.map((d) => d.name),
      ).toEqual(['main', 'second'])
      const one = await send(multi, 'GET', '/v1/stats?db=second', { token: tk })
      expect(
        (one.body as { databases: { counts: { pending: number } }[] }).databases[0]!.counts.pending,
      ).toBe(1)
      // An unknown name is answered as the row routes answer it: naming the configured ones.
      for (const path of ['/v1/stats?db=third', '/v1/outbox?db=third']) {
        const unknown = await send(multi, 'GET', path, { token: tk })
        expect([path, unknown.status, (unknown.body as { detail: string }).detail]).toEqual([
          path,
          404,
          'no database named "third"; configured: main, second',
        ])
      }
      // A created row's Location names its database: the row route requires ?db= here.
      const created = await send(multi, 'POST', '/v1/outbox?db=second', {
        token: tk,
        body: { message },
      })
      const location = `/v1/outbox/${(created.body as { id: string }).id}?db=second`
      expect([created.status, created.headers.get('location')]).toEqual([201, location])
      expect((await send(multi, 'GET', location, { token: tk })).status).toBe(200)
    } finally {
      await second.drop()
    }
  })
})

describe('NUL characters (U+0000), which Postgres cannot store', () => {
  const refused = (r: { status: number; body: unknown }) => ({
    status: r.status,
    type: (r.body as { type: string }).type,
    errors: (r.body as { errors?: unknown }).errors,
  })
  const nul = (path: string) => ({
    status: 400,
    type: 'urn:outbox-mailer:problem:validation_failed',
    errors: [{ path, message: 'must not contain the NUL character (U+0000)' }],
  })

  test('an enqueue is refused naming the field, and nothing is inserted', async () => {
    const cases = [
      [{ message: { ...message, subject: 's\u0000x' } }, 'message.subject'],
      [{ message: { ...message, text: 'a\u0000' } }, 'message.text'],
      [{ message, options: { tenant: '\u0000' } }, 'options.tenant'],
      [{ message: { ...message, headers: { 'X-A': 'v\u0000' } } }, 'message.headers.X-A'],
    ] as const
    for (const [body, path] of cases) {
      const r = await send(app, 'POST', '/v1/outbox', { token: tk, body })
      expect([path, refused(r)]).toEqual([path, nul(path)])
    }
    const rows = await t.pool.query('select count(*)::int as n from mailer.email_outbox')
    expect(rows.rows[0].n).toBe(0)
  })

  test('list filters are refused naming the parameter', async () => {
    for (const [query, path] of [
      ['tenant=%00', 'tenant'],
      ['correlationId=%00', 'correlationId'],
      ['dedupeKey=a%00b', 'dedupeKey'],
    ] as const) {
      const r = await send(app, 'GET', `/v1/outbox?${query}`, { token: tk })
      expect([query, refused(r)]).toEqual([query, nul(path)])
    }
  })

  test('bulk filters are refused naming the field', async () => {
    for (const url of ['/v1/outbox/cancel', '/v1/outbox/retry']) {
      for (const field of ['tenant', 'dedupeKey', 'correlationId']) {
        const r = await send(app, 'POST', url, {
          token: tk,
          body: { filter: { [field]: 'x\u0000' } },
        })
        expect([url, refused(r)]).toEqual([url, nul(`filter.${field}`)])
      }
    }
  })

  test('a tenant claim that is no tenant id (a NUL, a space) is refused as a bad token', async () => {
    for (const tenant of ['acme\u0000', 'acme corp', '']) {
      const confined = await token({ tenant })
      const listed = await send(app, 'GET', '/v1/outbox', { token: confined })
      expect([tenant, listed.status]).toEqual([tenant, 401])
      expect(listed.body).toMatchObject({
        detail: 'the tenant claim must be a tenant id: 1-200 characters of A-Z a-z 0-9 _ . : -',
      })
    }
  })

  test('one that reaches a statement another way is a 400, not a 500 (the backstop in problem.ts)', async () => {
    const probe = new OpenAPIHono<AppEnv>()
    probe.onError(onError)
    probe.get('/:code', (c) => {
      const code = c.req.param('code')
      throw Object.assign(new Error('invalid byte sequence for encoding "UTF8": 0x00'), { code })
    })
    for (const code of ['22021', '22P05']) {
      const r = await probe.request(`/${code}`)
      expect([code, r.status]).toEqual([code, 400])
      expect(await r.json()).toMatchObject({
        type: 'urn:outbox-mailer:problem:validation_failed',
        detail: 'a request value must not contain the NUL character (U+0000)',
      })
    }
  })

  test('a character the database encoding has not (22P05 too) is told apart by its routine, in any lc_messages', async () => {
    const probe = new OpenAPIHono<AppEnv>()
    probe.onError(onError)
    probe.get('/', () => {
      throw Object.assign(
        new Error(
          'Zeichen mit Byte-Folge 0xf0 0x9f 0x98 0x80 in Kodierung »UTF8« hat keine Entsprechung in Kodierung »WIN1252«',
        ),
        { code: '22P05', routine: 'report_untranslatable_char' },
      )
    })
    const r = await probe.request('/')
    expect([r.status, await r.json()]).toEqual([
      400,
      expect.objectContaining({
        type: 'urn:outbox-mailer:problem:validation_failed',
        detail:
          'a request value holds U+1F600, a character the database\'s encoding (WIN1252) cannot hold: the database must be UTF8 (deploy guide, "Database encoding")',
      }),
    ])
  })
})

describe('unpaired UTF-16 surrogates, which JSON can carry and Postgres cannot store', () => {
  const surrogate = (path: string) => ({
    status: 400,
    type: 'urn:outbox-mailer:problem:validation_failed',
    errors: [{ path, message: 'must not contain an unpaired UTF-16 surrogate (U+D800-U+DFFF)' }],
  })
  const refused = (r: { status: number; body: unknown }) => ({
    status: r.status,
    type: (r.body as { type: string }).type,
    errors: (r.body as { errors?: unknown }).errors,
  })

  test('an enqueue or a bulk filter holding one is refused naming the field, and nothing is inserted', async () => {
    const cases = [
      ['/v1/outbox', { message: { ...message, text: 'a\ud800b' } }, 'message.text'],
      ['/v1/outbox', { message: { ...message, subject: '\udc00' } }, 'message.subject'],
      ['/v1/outbox', { message, options: { dedupeKey: 'k\udfff' } }, 'options.dedupeKey'],
      [
        '/v1/outbox',
        { message: { ...message, headers: { 'X-\ud800': 'v' } } },
        'message.headers.X-\\ud800',
      ],
      ['/v1/outbox/cancel', { filter: { dedupeKey: '\ud800' } }, 'filter.dedupeKey'],
      ['/v1/outbox/retry', { filter: { correlationId: '\udbff' } }, 'filter.correlationId'],
    ] as const
    for (const [url, body, path] of cases) {
      const r = await send(app, 'POST', url, { token: tk, body })
      expect([path, refused(r)]).toEqual([path, surrogate(path)])
    }
    const rows = await t.pool.query('select count(*)::int as n from mailer.email_outbox')
    expect(rows.rows[0].n).toBe(0)
    // A pair is one character (U+1F600), stored as it came.
    const pair = await send(app, 'POST', '/v1/outbox', {
      token: tk,
      body: { message: { ...message, text: 'smile \ud83d\ude00' } },
    })
    expect(pair.status).toBe(201)
  })
})

describe('stats with a database down', () => {
  test('the databases that answer are reported, the one that does not carries a problem', async () => {
    const down = await unreachableDb()
    try {
      const multi = buildApp([
        { name: 'main', db: t.db, pool: t.pool },
        { name: 'down', db: down.db, pool: down.pool },
      ]).app
      await enqueueSql(t.pool)
      const r = await send(multi, 'GET', '/v1/stats', { token: tk })
      expect(r.status).toBe(200)
      const [main, gone] = (r.body as { databases: Record<string, unknown>[] }).databases
      expect(main).toMatchObject({ name: 'main', counts: { pending: 1 } })
      expect(gone).toEqual({
        name: 'down',
        problem: {
          type: 'urn:outbox-mailer:problem:database_unavailable',
          title: 'The database is unavailable',
          status: 503,
          detail: 'the database is not reachable',
        },
      })
      const only = await send(multi, 'GET', '/v1/stats?db=down', { token: tk })
      expect([only.status, (only.body as { type: string }).type]).toEqual([
        503,
        'urn:outbox-mailer:problem:database_unavailable',
      ])
      // An outage mends itself, as a deadlock or a failover does: a client is told when to repeat,
      // as those 503s tell it, rather than guessing (or repeating at once, in a loop).
      for (const path of ['/v1/stats?db=down', '/v1/outbox?db=down', '/v1/outbox/1?db=down']) {
        const r = await send(multi, 'GET', path, { token: tk })
        expect([path, r.status, r.headers.get('retry-after')]).toEqual([path, 503, '5'])
      }
    } finally {
      await down.close()
    }
  })
})

describe('a database that refuses this service at login', () => {
  test('no such database, no such role, or connections not allowed: every /v1 route is 503 database_unavailable saying why, not a 500', async () => {
    // A rotated password or a role gone (28P01 with password auth), one without LOGIN (28000), a
    // database renamed or not made yet (3D000), or one an operator closed (ALLOW_CONNECTIONS
    // false: 55000): readiness said so, while every API request answered 500 "internal error;
    // quote the request id".
    const closed = await createTestDb()
    await closed.close()
    await t.pool.query(
      `alter database ${new URL(closed.url).pathname.slice(1)} allow_connections false`,
    )
    const at = (path: string, user?: string) => {
      const u = new URL(t.url)
      u.pathname = path
      if (user) u.username = user
      return u.toString()
    }
    for (const [url, cause] of [
      [at('/outbox_no_such_database'), 'SQLSTATE 3D000'],
      [at(new URL(t.url).pathname, 'outbox_no_such_role'), 'SQLSTATE 28P01'],
      [closed.url, 'SQLSTATE 55000'],
    ] as const) {
      const refused = openDb({ name: 'default', url, log: silentLogger })
      try {
        const { app: refusing } = appOnDefault(refused)
        for (const [method, path] of [
          ['GET', '/v1/stats'],
          ['GET', '/v1/outbox'],
          ['GET', '/v1/outbox/1'],
          ['POST', '/v1/outbox/1/cancel'],
        ] as const) {
          const r = await send(refusing, method, path, { token: tk })
          expect([cause, path, r.status, (r.body as { type: string }).type]).toEqual([
            cause,
            path,
            503,
            'urn:outbox-mailer:problem:database_unavailable',
          ])
          expect((r.body as { detail: string }).detail).toContain(cause)
          // Only an operator mends a refused login: no Retry-After invites a loop of repeats.
          expect([cause, path, r.headers.get('retry-after')]).toEqual([cause, path, null])
        }
      } finally {
        await refused.close()
      }
    }
    await closed.drop()
  })
})

describe('a transaction Postgres aborts to break a deadlock', () => {
  test('a bulk cancel that deadlocks with another writer answers a retryable 503, not a 500', async () => {
    const first = await enqueueSql(t.pool)
    const second = await enqueueSql(t.pool)
    const other = await holdRowLocked(t.pool, second)
    try {
      // Its own deadlock check comes long after the bulk cancel's (1 s), so Postgres aborts the
      // bulk cancel to break the cycle, not this session.
      await other.client.query(`set local deadlock_timeout = '1min'`)
      const cancelling = send(app, 'POST', '/v1/outbox/cancel', {
        token: tk,
        body: { filter: { status: ['pending'] } },
      })
      // The bulk cancel holds the first row and waits for the second; this session now wants the first.
      await untilLockWaits(t.pool)
      const closing = other.client.query(
        'select 1 from mailer.email_outbox where id = $1 for update',
        [first],
      )
      const r = await cancelling
      await closing
      expect([r.status, r.headers.get('retry-after')]).toEqual([503, '1'])
      expect(r.body).toMatchObject({
        type: 'urn:outbox-mailer:problem:database_unavailable',
        detail: expect.stringContaining('try again'),
      })
    } finally {
      await other.end('rollback')
    }
  })

  test('a cancel that waits for a row lock past the role’s lock_timeout answers a retryable 503, not a 500', async () => {
    // Managed Postgres and DBAs often set lock_timeout on the application's role or database: a
    // cancel of a row another transaction holds (a worker settling it, the application) was
    // cancelled by it (55P03) and answered 500 "internal error".
    const id = await enqueueSql(t.pool)
    const timed = openDb({
      name: 'default',
      url: `${t.url}${t.url.includes('?') ? '&' : '?'}options=${encodeURIComponent('-c lock_timeout=100')}`,
      log: silentLogger,
    })
    const other = await holdRowLocked(t.pool, id)
    try {
      const r = await send(appOnDefault(timed).app, 'POST', `/v1/outbox/${id}/cancel`, {
        token: tk,
      })
      expect([r.status, r.headers.get('retry-after'), (r.body as { type: string }).type]).toEqual([
        503,
        '1',
        'urn:outbox-mailer:problem:database_unavailable',
      ])
      expect((r.body as { detail: string }).detail).toContain('nothing was changed, try again')
    } finally {
      await other.end('rollback')
      await timed.close()
    }
    expect((await t.pool.query('select status from mailer.email_outbox')).rows).toEqual([
      { status: 'pending' },
    ])
  })

  test('a deadlock or serialization failure of any API statement is database_unavailable, retryable', async () => {
    for (const sqlstate of ['40P01', '40001']) {
      const err = await withStatementTimeout(t.db, 5_000, async (trx) => {
        await sql`do $$ begin raise exception 'aborted' using errcode = ${sql.lit(sqlstate)}; end $$`.execute(
          trx,
        )
      }).catch((e: unknown) => e)
      expect([sqlstate, isAppError(err, 'database_unavailable')]).toEqual([sqlstate, true])
      expect((err as { details?: unknown }).details).toEqual({ retryAfterSeconds: 1 })
    }
  })
})

describe('request plumbing', () => {
  test('X-Request-Id is echoed when given, generated otherwise, and in problems', async () => {
    const given = await send(app, 'GET', '/v1/outbox/1', {
      token: tk,
      headers: { 'x-request-id': 'abc-123' },
    })
    expect(given.headers.get('x-request-id')).toBe('abc-123')
    expect((given.body as { requestId: string }).requestId).toBe('abc-123')
    const generated = await send(app, 'GET', '/healthz')
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    const unsafe = await send(app, 'GET', '/healthz', {
      headers: { 'x-request-id': 'has spaces <and> more' },
    })
    expect(unsafe.headers.get('x-request-id')).not.toBe('has spaces <and> more')
  })

  test('an unknown route is a 404 problem', async () => {
    const r = await send(app, 'GET', '/v2/nothing')
    expect(r.status).toBe(404)
    expect(r.headers.get('content-type')).toBe('application/problem+json')
  })

  test('a statement that outlives statement_timeout becomes database_unavailable', async () => {
    const err = await withStatementTimeout(t.db, 50, async (trx) => {
      await sql`select pg_sleep(5)`.execute(trx)
    }).catch((e: unknown) => e)
    expect(isAppError(err, 'database_unavailable')).toBe(true)
    expect((err as { details?: Record<string, unknown> }).details?.retryAfterSeconds).toBe(5)
  })
})
