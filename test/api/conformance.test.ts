// Every route of /openapi.json, driven through its edges: each answer must be one the document declares.
// `send` (support/harness.ts) checks every answer against the app's own document (support/contract.ts):
// a status the operation does not list, a content type, a body off its schema (an undeclared field
// included), a declared header missing or malformed, a HEAD with a body, a problem whose status or
// requestId disagrees, all fail naming route and status; and a request answered 2xx whose body or
// query the document refuses fails too.
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi'
import { ENQUEUE_BODY_LIMIT_BYTES } from '../../src/api/body-limits.ts'
import { withHeadOperations } from '../../src/api/head-operations.ts'
import { openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { closedPort } from '../support/closed-port.ts'
import { useTestDb } from '../support/db.ts'
import { createContract, type Doc } from './support/contract.ts'
import {
  type App,
  appOnDefault,
  buildApp,
  contractOf,
  enqueueSql,
  type Sent,
  send,
  setState,
} from './support/harness.ts'
import { token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
let app: App
let doc: Doc
let full: string
const message = { to: 'ada@example.com', subject: 'Hello', text: 'Hi Ada' }

beforeAll(async () => {
  app = appOnDefault(t).app
  doc = (await (await app.request('/openapi.json')).json()) as Doc
  full = await token()
})

/**
 * One request per documented operation, valid for the route (its id names a row that exists); each
 * GET's HEAD with the same request.
 */
function samples(id: string): Record<string, { url: string; body?: unknown }> {
  const all = requests(id)
  for (const [key, s] of Object.entries(all))
    if (key.startsWith('GET ')) all[`HEAD ${key.slice(4)}`] = s
  return all
}

function requests(id: string): Record<string, { url: string; body?: unknown }> {
  const filter = { filter: { ids: [id] }, dryRun: true }
  return {
    'GET /healthz': { url: '/healthz' },
    'GET /readyz': { url: '/readyz' },
    'GET /metrics': { url: '/metrics' },
    'GET /v1/outbox': { url: '/v1/outbox' },
    'POST /v1/outbox': { url: '/v1/outbox', body: { message } },
    'GET /v1/outbox/{id}': { url: `/v1/outbox/${id}` },
    'POST /v1/outbox/{id}/cancel': { url: `/v1/outbox/${id}/cancel` },
    'POST /v1/outbox/{id}/retry': { url: `/v1/outbox/${id}/retry` },
    'POST /v1/outbox/cancel': { url: '/v1/outbox/cancel', body: filter },
    'POST /v1/outbox/retry': { url: '/v1/outbox/retry', body: filter },
    'GET /v1/stats': { url: '/v1/stats' },
  }
}

const operations = (d: Doc) =>
  Object.entries(d.paths)
    .flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`))
    .sort()

const problemType = (r: Sent) => (r.body as { type?: string }).type

describe('the document and the app agree', () => {
  test('the operations are the contract’s (DESIGN.md), and each has a sample request here', () => {
    expect(operations(doc)).toEqual(Object.keys(samples('1')).sort())
  })

  test('every operation has its own stable operationId, for generated clients’ method names', () => {
    const ids = Object.fromEntries(
      Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.entries(ops).map(([method, op]) => [
          `${method.toUpperCase()} ${path}`,
          (op as { operationId?: string }).operationId,
        ]),
      ),
    )
    // Renaming one renames a method in every client generated from the document: pinned.
    expect(ids).toEqual({
      'GET /healthz': 'liveness',
      'GET /readyz': 'readiness',
      'GET /metrics': 'metrics',
      'GET /v1/outbox': 'listRows',
      'POST /v1/outbox': 'enqueue',
      'GET /v1/outbox/{id}': 'getRow',
      'POST /v1/outbox/{id}/cancel': 'cancelRow',
      'POST /v1/outbox/{id}/retry': 'retryRow',
      'POST /v1/outbox/cancel': 'cancelRows',
      'POST /v1/outbox/retry': 'retryRows',
      'GET /v1/stats': 'getStats',
      'HEAD /healthz': 'livenessHead',
      'HEAD /readyz': 'readinessHead',
      'HEAD /metrics': 'metricsHead',
      'HEAD /v1/outbox': 'listRowsHead',
      'HEAD /v1/outbox/{id}': 'getRowHead',
      'HEAD /v1/stats': 'getStatsHead',
    })
  })

  test('every GET operation has its HEAD (Hono answers it with the GET), of the same statuses, without bodies', () => {
    for (const [path, ops] of Object.entries(doc.paths)) {
      const get = ops.get
      if (!get) continue
      const head = ops.head
      expect([path, head === undefined]).toEqual([path, false])
      expect([path, Object.keys(head!.responses)]).toEqual([path, Object.keys(get.responses)])
      for (const [status, res] of Object.entries(head!.responses))
        expect([path, status, res.content]).toEqual([path, status, undefined])
    }
  })

  test('every answer of every operation declares its X-Request-Id header, required', () => {
    const declared = (doc.components as { headers?: Record<string, unknown> }).headers?.RequestId
    expect(declared).toMatchObject({ required: true, schema: { type: 'string' } })
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        for (const [status, res] of Object.entries(op.responses)) {
          expect([method, path, status, res.headers?.['X-Request-Id']]).toEqual([
            method,
            path,
            status,
            { $ref: '#/components/headers/RequestId' },
          ])
        }
      }
    }
  })

  test('every problem answer of every operation names the problem types it may carry', () => {
    const typesOf = (schema: unknown) =>
      (schema as { allOf?: { properties?: { type?: { enum?: string[] } } }[] }).allOf?.[1]
        ?.properties?.type?.enum
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        for (const [status, res] of Object.entries(op.responses)) {
          const media = res.content?.['application/problem+json']
          if (!media) continue
          const types = typesOf(media.schema)
          expect([method, path, status, types?.length ?? 0]).not.toEqual([method, path, status, 0])
          for (const type of types ?? [])
            expect([method, path, status, type]).toEqual([
              method,
              path,
              status,
              expect.stringMatching(/^urn:outbox-mailer:problem:[a-z_]+$/),
            ])
        }
      }
    }
  })

  test('what README promises beyond the operations is in the document: 404 and 405 for what no route serves, X-Request-Id sent, the oldest-first 503', () => {
    const about = (doc as unknown as { info: { description: string } }).info.description
    for (const said of [
      '404 not_found',
      '405 method_not_allowed',
      'Allow header',
      '/openapi.json',
      '/docs',
    ])
      expect([said, about.includes(said)]).toEqual([said, true])
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const sent = (op.parameters ?? []).filter((p) => p.name === 'X-Request-Id')
        expect([method, path, sent]).toEqual([
          method,
          path,
          [expect.objectContaining({ in: 'header', required: false })],
        ])
      }
    }
    // A page oldest first waiting out an open writer: 503 database_unavailable with Retry-After 1.
    const list = doc.paths['/v1/outbox']!.get!.responses['503'] as { description: string }
    expect(list.description).toContain('oldest first')
  })

  test('every route the app serves is documented, and every documented operation is served', () => {
    // Hono serves HEAD wherever GET is, as the GET without the body.
    const served = app.routes
      .filter((r) => r.method !== 'ALL' && r.path !== '/openapi.json' && r.path !== '/docs')
      .flatMap((r) => (r.method === 'GET' ? ['GET', 'HEAD'] : [r.method]).map((m) => [m, r.path]))
      .map(([m, path]) => `${m} ${path!.replace(/:(\w+)/g, '{$1}')}`)
    expect([...new Set(served)].sort()).toEqual(operations(doc))
  })
})

describe('auth, as DESIGN.md has it', () => {
  test('every /v1 operation declares the bearer scheme and refuses a caller without a valid token', async () => {
    expect(doc.components.securitySchemes).toMatchObject({
      Bearer: { type: 'http', scheme: 'bearer' },
    })
    const id = await enqueueSql(t.pool)
    const expired = await token({ expiresIn: -600 })
    for (const [key, s] of Object.entries(samples(id))) {
      const [method, path] = key.split(' ') as [string, string]
      const op = doc.paths[path]![method.toLowerCase()]!
      if (!path.startsWith('/v1/')) continue
      expect([key, op.security]).toEqual([key, [{ Bearer: [] }]])
      for (const tk of [undefined, expired, 'a.b.c']) {
        const r = await send(app, method, s.url, { token: tk, body: s.body })
        const challenge = tk === undefined ? 'Bearer' : 'Bearer error="invalid_token"'
        expect([key, r.status, r.headers.get('www-authenticate')]).toEqual([key, 401, challenge])
      }
    }
    // Not only the documented routes: the whole /v1 prefix is behind the token.
    expect((await send(app, 'GET', '/v1/nothing')).status).toBe(401)
  })

  test('health, readiness, metrics, the document and the docs need no token', async () => {
    for (const [key, s] of Object.entries(samples('1'))) {
      const [method, path] = key.split(' ') as [string, string]
      if (path.startsWith('/v1/')) continue
      expect([key, doc.paths[path]![method.toLowerCase()]!.security]).toEqual([key, undefined])
      expect([key, (await send(app, method, s.url)).status]).toEqual([key, 200])
    }
    for (const url of ['/openapi.json', '/docs'])
      expect([url, (await send(app, 'GET', url)).status]).toEqual([url, 200])
  })
})

describe('methods', () => {
  test('HEAD of every GET route answers as the GET does, without a body', async () => {
    const id = await enqueueSql(t.pool)
    const gets = Object.entries(samples(id)).filter(([k]) => k.startsWith('GET '))
    for (const [key, s] of [...gets, ['GET /docs', { url: '/docs' }] as const]) {
      for (const tk of [full, undefined]) {
        const get = await send(app, 'GET', s.url, { token: tk })
        const head = await send(app, 'HEAD', s.url, { token: tk })
        expect([key, head.status, head.headers.get('content-type'), head.body]).toEqual([
          key,
          get.status,
          get.headers.get('content-type'),
          '',
        ])
      }
    }
  })

  test('a method a path does not serve is a 405 problem whose Allow lists the methods it does', async () => {
    const contract = createContract(doc)
    // What the router serves at the URL: every template it matches (GET /v1/outbox/cancel is GET
    // /v1/outbox/{id} of the id "cancel"), HEAD with each GET.
    const allowOf = (url: string) => {
      const methods = ['GET', 'POST'].filter((m) => contract.operation(m, url))
      return methods.flatMap((m) => (m === 'GET' ? ['GET', 'HEAD'] : [m])).join(', ')
    }
    const urls = [
      ...Object.keys(doc.paths).map((path) => path.replace('{id}', '1')),
      '/openapi.json',
      '/docs',
    ]
    for (const url of urls) {
      const allow = url === '/openapi.json' || url === '/docs' ? 'GET, HEAD' : allowOf(url)
      for (const method of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) {
        if (allow.split(', ').includes(method)) continue
        const r = await send(app, method, url, { token: full })
        expect([method, url, r.status, r.headers.get('allow')]).toEqual([method, url, 405, allow])
        if (method !== 'HEAD')
          expect([method, url, problemType(r)]).toEqual([
            method,
            url,
            'urn:outbox-mailer:problem:method_not_allowed',
          ])
      }
    }
    // The token comes first under /v1: an anonymous caller learns nothing of the routes.
    expect((await send(app, 'PUT', '/v1/outbox')).status).toBe(401)
  })

  test('a 405\'s detail names the methods served in a sentence: one "is", several "are"', async () => {
    const detailOf = async (method: string, url: string) =>
      ((await send(app, method, url, { token: full })).body as { detail: string }).detail
    expect([
      await detailOf('GET', '/v1/outbox/1/cancel'),
      await detailOf('DELETE', '/v1/outbox/1'),
      await detailOf('PUT', '/v1/outbox'),
    ]).toEqual([
      'GET is not served at /v1/outbox/1/cancel; POST is',
      'DELETE is not served at /v1/outbox/1; GET and HEAD are',
      'PUT is not served at /v1/outbox; GET, HEAD and POST are',
    ])
  })

  test('a path nobody serves is a 404 problem, whatever the method', async () => {
    for (const url of [
      '/nothing',
      '/v1/nothing',
      '/v1/outbox/1/nothing',
      '/v1/outbox/',
      '/healthz/x',
    ]) {
      for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS']) {
        const r = await send(app, method, url, { token: full })
        expect([method, url, r.status, r.headers.get('allow'), problemType(r)]).toEqual([
          method,
          url,
          404,
          null,
          'urn:outbox-mailer:problem:not_found',
        ])
      }
    }
  })
})

describe('bodies', () => {
  // The routes that read a JSON body; a single-row action's is optional (none, or {}).
  const withBody = () =>
    Object.entries(samples('1')).filter(([k]) => {
      const [method, path] = k.split(' ') as [string, string]
      const body = doc.paths[path]![method.toLowerCase()]!.requestBody as { required?: boolean }
      return body?.required === true
    })

  test('malformed JSON, a body that is no object, and an empty body are 400 problems', async () => {
    for (const [key, s] of withBody()) {
      for (const body of ['{"message":', '[]', '"x"', 'null', '42', '']) {
        const r = await send(app, 'POST', s.url, {
          token: full,
          body,
          headers: { 'content-type': 'application/json' },
        })
        expect([key, body, r.status, problemType(r)]).toEqual([
          key,
          body,
          400,
          'urn:outbox-mailer:problem:validation_failed',
        ])
      }
    }
  })

  test('a body that is not UTF-8 (Latin-1 bytes, as a client set to its platform charset sends) is a 400, not text with U+FFFD in it', async () => {
    const contract = createContract(doc)
    const before = await t.pool.query('select count(*)::int as n from mailer.email_outbox')
    for (const [key, s] of withBody()) {
      const text = JSON.stringify(
        key === 'POST /v1/outbox'
          ? { message: { ...message, subject: 'Grüße aus Köln' } }
          : { filter: { tenant: 'Köln' }, dryRun: true },
      )
      const res = await app.request(s.url, {
        method: 'POST',
        headers: { authorization: `Bearer ${full}`, 'content-type': 'application/json' },
        body: Buffer.from(text, 'latin1'),
      })
      const body = (await res.json()) as { type?: string; errors?: { path: string }[] }
      const r = { status: res.status, headers: res.headers, body, res }
      contract.check('POST', s.url, r)
      expect([key, r.status, body.type, body.errors?.[0]?.path]).toEqual([
        key,
        400,
        'urn:outbox-mailer:problem:validation_failed',
        '(root)',
      ])
    }
    const after = await t.pool.query('select count(*)::int as n from mailer.email_outbox')
    expect(after.rows[0].n).toBe(before.rows[0].n)
    // A token without the scope learns that first, whatever the body.
    const read = await token({ scope: 'outbox:read' })
    for (const [key, s] of withBody()) {
      const res = await app.request(s.url, {
        method: 'POST',
        headers: { authorization: `Bearer ${read}`, 'content-type': 'application/json' },
        body: Buffer.from('{"x":"Köln"}', 'latin1'),
      })
      expect([key, res.status]).toEqual([key, 403])
    }
    // UTF-8, with or without a byte order mark, is taken.
    for (const bom of ['', '\ufeff']) {
      const res = await app.request('/v1/outbox', {
        method: 'POST',
        headers: { authorization: `Bearer ${full}`, 'content-type': 'application/json' },
        body: Buffer.from(`${bom}${JSON.stringify({ message: { ...message, subject: 'Grüße' } })}`),
      })
      expect([bom, res.status]).toEqual([bom, 201])
    }
  })

  test('a value nested 100,000 deep (200 KB) where the body passes keys through to Postgres is a 400 naming it, not a 500', async () => {
    const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`
    const m = '"to":"a@example.com","subject":"s","text":"t"'
    for (const [path, body] of [
      ['message.zzz', `{"message":{${m},"zzz":${deep(100_000)}}}`],
      ['options.zzz', `{"message":{${m}},"options":{"zzz":${deep(100_000)}}}`],
      [
        'message.attachments.0.zzz',
        `{"message":{${m},"attachments":[{"filename":"a","contentBase64":"","zzz":${deep(100_000)}}]}}`,
      ],
    ] as const) {
      const r = await send(app, 'POST', '/v1/outbox', {
        token: full,
        body,
        headers: { 'content-type': 'application/json' },
      })
      const errors = (r.body as { errors?: { path: string }[] }).errors ?? []
      expect([path, r.status, errors.some((e) => e.path.startsWith(path))]).toEqual([
        path,
        400,
        true,
      ])
    }
  })

  test('a body without a JSON content type is a 415; a JSON type with parameters is accepted', async () => {
    for (const [key, s] of withBody()) {
      const json = JSON.stringify(s.body)
      for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
        const r = await send(app, 'POST', s.url, {
          token: full,
          body: json,
          headers: { 'content-type': type },
        })
        expect([key, type, r.status]).toEqual([key, type, 415])
      }
      const ok = await send(app, 'POST', s.url, {
        token: full,
        body: json,
        headers: { 'content-type': 'application/json; charset=utf-8' },
      })
      expect([key, ok.status < 300]).toEqual([key, true])
    }
  })

  test('a compressed body (Content-Encoding: gzip, br) is a 415 naming the header, not a 400 calling it Latin-1; identity is taken', async () => {
    const contract = createContract(doc)
    const before = await t.pool.query('select count(*)::int as n from mailer.email_outbox')
    for (const [key, s] of withBody()) {
      for (const coding of ['gzip', 'br']) {
        const res = await app.request(s.url, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${full}`,
            'content-type': 'application/json',
            'content-encoding': coding,
          },
          body: Bun.gzipSync(JSON.stringify(s.body)),
        })
        const body = (await res.json()) as { type?: string; detail?: string }
        contract.check('POST', s.url, { status: res.status, headers: res.headers, body, res })
        expect([key, coding, res.status, body.type, body.detail]).toEqual([
          key,
          coding,
          415,
          'urn:outbox-mailer:problem:unsupported_media_type',
          'a compressed body (Content-Encoding) is not accepted: send the JSON uncompressed',
        ])
        expect(res.headers.get('accept-encoding')).toBe('identity')
      }
    }
    const after = await t.pool.query('select count(*)::int as n from mailer.email_outbox')
    expect(after.rows[0].n).toBe(before.rows[0].n)
    const identity = await send(app, 'POST', '/v1/outbox', {
      token: full,
      body: { message },
      headers: { 'content-type': 'application/json', 'content-encoding': 'identity' },
    })
    expect(identity.status).toBe(201)
  })

  test('a key the server refuses (mailer.enqueue_email names it) the document refuses too', async () => {
    const contract = createContract(doc)
    const file = { filename: 'a.txt', contentBase64: 'aGk=' }
    const unknown: [string, Record<string, unknown>][] = [
      ['message key', { message: { ...message, priority: 1 } }],
      ['recipient key', { message: { ...message, to: { address: 'ada@example.com', x: 1 } } }],
      ['attachment key', { message: { ...message, attachments: [{ ...file, size: 2 }] } }],
      ['option', { message, options: { retries: 3 } }],
    ]
    for (const [name, body] of unknown) {
      const r = await send(app, 'POST', '/v1/outbox', { token: full, body })
      expect([name, r.status]).toEqual([name, 400])
      expect([name, contract.requestErrors('POST', '/v1/outbox', body)]).not.toEqual([name, null])
    }
    // And what it takes, it documents: the same shapes with only declared keys.
    const ok = {
      message: { ...message, to: { address: 'ada@example.com', name: null }, attachments: [file] },
    }
    expect(contract.requestErrors('POST', '/v1/outbox', ok)).toBeNull()
    expect((await send(app, 'POST', '/v1/outbox', { token: full, body: ok })).status).toBe(201)
  })

  test('a control character in a correlation id, a header value, a file name or a content id: a 400 naming it, refused by the document too', async () => {
    const contract = createContract(doc)
    const cases: [string, Record<string, unknown>][] = [
      ['options.correlationId', { message, options: { correlationId: 'order\n42' } }],
      ['options.correlationId', { message, options: { correlationId: 'order\t42' } }],
      ['message.headers.X-Tag', { message: { ...message, headers: { 'X-Tag': 'a\u001b[31m' } } }],
      ['message.headers.X-Tag', { message: { ...message, headers: { 'X-Tag': 'a\u007f' } } }],
      [
        'message.attachments.0.filename',
        {
          message: { ...message, attachments: [{ filename: 'a\r\nb.txt', contentBase64: 'aGk=' }] },
        },
      ],
      [
        'message.attachments.0.contentId',
        {
          message: {
            ...message,
            attachments: [{ filename: 'a.png', contentBase64: 'aGk=', contentId: 'logo\t1' }],
          },
        },
      ],
    ]
    for (const [field, body] of cases) {
      const r = await send(app, 'POST', '/v1/outbox', { token: full, body })
      const paths = (r.body as { errors?: { path: string }[] }).errors?.map((e) => e.path)
      expect([field, r.status, paths]).toEqual([field, 400, [field]])
      expect([field, contract.requestErrors('POST', '/v1/outbox', body)]).not.toEqual([field, null])
    }
    // A tab in a header value is whitespace, taken; a subject's control characters fold.
    const ok = {
      message: { ...message, subject: 'a\u001bb', headers: { 'X-Tag': 'a\tb' } },
      options: { correlationId: 'order 42' },
    }
    expect(contract.requestErrors('POST', '/v1/outbox', ok)).toBeNull()
    expect((await send(app, 'POST', '/v1/outbox', { token: full, body: ok })).status).toBe(201)
  })

  test('an option value mailer.enqueue_email refuses the document refuses too; its limits it takes', async () => {
    const contract = createContract(doc)
    const refused: [string, Record<string, unknown>][] = [
      ['options.tenant', { tenant: 'a b' }],
      ['options.tenant', { tenant: 't'.repeat(201) }],
      ['options.dedupeKey', { dedupeKey: 'k'.repeat(501) }],
      ['options.correlationId', { correlationId: 'c'.repeat(201) }],
      ['options.priority', { priority: -101 }],
      ['options.priority', { priority: 101 }],
      ['options.maxAttempts', { maxAttempts: 0 }],
      ['options.maxAttempts', { maxAttempts: 101 }],
      ['options.sendAt', { sendAt: '2030-01-01T09:00:00' }],
      ['options.sendAt', { sendAt: 'tomorrow' }],
      ['options.expiresAt', { expiresAt: '2030-01-01' }],
    ]
    for (const [field, options] of refused) {
      const body = { message, options }
      const r = await send(app, 'POST', '/v1/outbox', { token: full, body })
      const paths = (r.body as { errors?: { path: string }[] }).errors?.map((e) => e.path)
      expect([field, r.status, paths]).toEqual([field, 400, [field]])
      expect([field, contract.requestErrors('POST', '/v1/outbox', body)]).not.toEqual([field, null])
    }
    const limits: Record<string, unknown>[] = [
      { tenant: 't'.repeat(200), dedupeKey: 'k'.repeat(500), correlationId: 'c'.repeat(200) },
      { tenant: 'a.b:c_d-1', priority: -100, maxAttempts: 1, sendAt: '2030-01-01 09:00+02' },
      { priority: 100, maxAttempts: 100, sendAt: '2030-01-01T09:00:00.5-0130' },
      { sendAt: '2030-01-01T09:00:00Z', expiresAt: '2030-01-02T09:00:00+00:00' },
    ]
    for (const options of limits) {
      const body = { message, options }
      expect([options, contract.requestErrors('POST', '/v1/outbox', body)]).toEqual([options, null])
      const r = await send(app, 'POST', '/v1/outbox', { token: full, body })
      expect([options, r.status]).toEqual([options, 201])
    }
  })

  test('a priority or maxAttempts past 2^53 is refused with its own range, as mailer.enqueue_email says it, not a bound of 2^53', async () => {
    for (const [field, options, range] of [
      [
        'options.priority',
        { priority: 1e20 },
        'must be an integer from -100 (first) to 100 (last)',
      ],
      [
        'options.priority',
        { priority: -1e300 },
        'must be an integer from -100 (first) to 100 (last)',
      ],
      ['options.maxAttempts', { maxAttempts: 1e20 }, 'must be an integer from 1 to 100'],
    ] as const) {
      const r = await send(app, 'POST', '/v1/outbox', { token: full, body: { message, options } })
      expect([field, r.status, (r.body as { errors?: unknown[] }).errors]).toEqual([
        field,
        400,
        [{ path: field, message: range }],
      ])
    }
    const half = await send(app, 'POST', '/v1/outbox', {
      token: full,
      body: { message, options: { priority: 1.5 } },
    })
    expect([half.status, (half.body as { errors?: unknown[] }).errors]).toEqual([
      400,
      [{ path: 'options.priority', message: 'must be a whole number' }],
    ])
  })

  test('a message mailer.enqueue_email refuses for its subject, headers or base64 the document refuses too', async () => {
    const contract = createContract(doc)
    const file = { filename: 'a.txt', contentBase64: 'aGk=' }
    const refused: [string, Record<string, unknown>][] = [
      ['message.subject', { to: message.to, text: message.text }],
      [
        'message.headers',
        { ...message, headers: { 'X-A': '1', 'X-B': '2', 'X-C': '3', 'X-D': '4' } },
      ],
      ['message.headers.Priority', { ...message, headers: { Priority: 'urgent' } }],
      ['message.headers.X-', { ...message, headers: { 'X-': 'empty name' } }],
      // A character outside base64 is named at the content; a misplaced = by the whole attachment.
      [
        'message.attachments.0.contentBase64',
        { ...message, attachments: [{ ...file, contentBase64: 'aGk=!' }] },
      ],
      ['message.attachments.0', { ...message, attachments: [{ ...file, contentBase64: 'a=b=' }] }],
    ]
    for (const [field, m] of refused) {
      const body = { message: m }
      const r = await send(app, 'POST', '/v1/outbox', { token: full, body })
      const paths = (r.body as { errors?: { path: string }[] }).errors?.map((e) => e.path)
      expect([field, r.status, paths]).toEqual([field, 400, [field]])
      expect([field, contract.requestErrors('POST', '/v1/outbox', body)]).not.toEqual([field, null])
    }
    const taken: Record<string, unknown>[] = [
      { ...message, headers: { 'X-A': '1', 'x-b-2': '2', [`X-${'n'.repeat(70)}`]: '3' } },
      {
        ...message,
        attachments: [
          { ...file, contentBase64: 'aGk=\n' },
          { ...file, contentBase64: 'QUJD\r\nREVG' },
          { ...file, contentBase64: 'QU\nJ =\n' },
          { ...file, contentBase64: 'Q U\n==' },
        ],
      },
      { ...message, attachments: [{ ...file, contentBase64: '' }] },
    ]
    for (const m of taken) {
      const body = { message: m }
      expect([m, contract.requestErrors('POST', '/v1/outbox', body)]).toEqual([m, null])
      const r = await send(app, 'POST', '/v1/outbox', { token: full, body })
      expect([m, r.status]).toEqual([m, 201])
    }
    // Not whole groups of four (sql/0029; Graph's decoder refuses it): refused naming the content,
    // and said in the document's description (a pattern for it was seconds per 4 MB attachment).
    for (const contentBase64 of ['aGk', 'QUJD\nR']) {
      const body = { message: { ...message, attachments: [{ ...file, contentBase64 }] } }
      const r = await send(app, 'POST', '/v1/outbox', { token: full, body })
      const paths = (r.body as { errors?: { path: string }[] }).errors?.map((e) => e.path)
      expect([contentBase64, r.status, paths]).toEqual([
        contentBase64,
        400,
        ['message.attachments.0.contentBase64'],
      ])
    }
  })

  test('more than 500 addresses in one recipient list the server refuses, and the document refuses too', async () => {
    const contract = createContract(doc)
    const addresses = (n: number) => Array.from({ length: n }, (_, i) => `r${i}@example.com`)
    for (const [field, m] of [
      ['message.to', { ...message, to: addresses(501) }],
      ['message.cc', { ...message, cc: addresses(501) }],
      ['message.replyTo', { ...message, replyTo: addresses(501) }],
    ] as const) {
      const body = { message: m }
      const r = await send(app, 'POST', '/v1/outbox', { token: full, body })
      expect([field, r.status]).toEqual([field, 400])
      expect([field, contract.requestErrors('POST', '/v1/outbox', body)]).not.toEqual([field, null])
    }
    // 500 in one list is taken by both (to, cc and bcc together stay a rule of the server's).
    for (const m of [
      { ...message, to: addresses(500) },
      { ...message, replyTo: addresses(500) },
    ]) {
      const body = { message: m }
      expect(contract.requestErrors('POST', '/v1/outbox', body)).toBeNull()
      expect((await send(app, 'POST', '/v1/outbox', { token: full, body })).status).toBe(201)
    }
  })

  test('a bulk filter naming no criterion ({}) the server refuses, and the document refuses too', async () => {
    const contract = createContract(doc)
    for (const url of ['/v1/outbox/cancel', '/v1/outbox/retry']) {
      for (const body of [{ filter: {} }, { filter: {}, dryRun: true }]) {
        const r = await send(app, 'POST', url, { token: full, body })
        expect([url, body, r.status]).toEqual([url, body, 400])
        expect([url, body, contract.requestErrors('POST', url, body)]).not.toEqual([
          url,
          body,
          null,
        ])
      }
      const one = { filter: { ids: ['1'] }, dryRun: true }
      expect([url, contract.requestErrors('POST', url, one)]).toEqual([url, null])
    }
  })

  test('routes that take no body refuse one, acting on nothing (row-action-body.test.ts has each)', async () => {
    const id = await enqueueSql(t.pool)
    const r = await send(app, 'POST', `/v1/outbox/${id}/cancel`, { token: full, body: 'anything' })
    expect(r.status).toBe(400)
    await setState(t.pool, id, 'failed')
    const again = await send(app, 'POST', `/v1/outbox/${id}/retry`, { token: full, body: { x: 1 } })
    expect(again.status).toBe(400)
    const rows = await t.pool.query('select status from mailer.email_outbox where id = $1', [id])
    expect(rows.rows).toEqual([{ status: 'failed' }])
  })
})

describe('parameters', () => {
  test('bad query values, ids and headers are 400 problems naming the parameter', async () => {
    const cases: [string, string, Record<string, string>?][] = [
      ['GET', '/v1/outbox?status=bogus'],
      ['GET', '/v1/outbox?status=pending&status=bogus'],
      ['GET', '/v1/outbox?status=pending,sent'],
      ['GET', '/v1/outbox?order=asc'],
      ['GET', '/v1/outbox?order=newest&order=oldest'],
      ['GET', '/v1/outbox?limit=abc'],
      ['GET', '/v1/outbox?limit=201'],
      ['GET', '/v1/outbox?limit=1.5'],
      // Number() reads these as 100, 16, 5, 5 and 50: a limit is written in decimal digits.
      ['GET', '/v1/outbox?limit=1e2'],
      ['GET', '/v1/outbox?limit=0x10'],
      ['GET', '/v1/outbox?limit=%2B5'],
      ['GET', '/v1/outbox?limit=%205'],
      ['GET', '/v1/outbox?limit=050'],
      ['GET', '/v1/outbox?cursor=garbage'],
      ['GET', '/v1/outbox?createdFrom=yesterday'],
      ['GET', '/v1/outbox?tenant='],
      ['GET', '/v1/outbox?db=default&db=default'],
      ['GET', '/v1/outbox?limt=5'],
      ['GET', '/v1/outbox/0'],
      ['GET', '/v1/outbox/01'],
      ['GET', '/v1/outbox/-1'],
      ['GET', '/v1/outbox/1.0'],
      ['GET', '/v1/outbox/9223372036854775808'],
      ['POST', '/v1/outbox/abc/cancel'],
      ['POST', '/v1/outbox/1/retry?force=true'],
      ['GET', '/v1/stats?verbose=1'],
      ['POST', '/v1/outbox', { 'idempotency-key': '' }],
      ['POST', '/v1/outbox', { 'idempotency-key': 'k'.repeat(501) }],
    ]
    for (const [method, url, headers] of cases) {
      const body = method === 'POST' && url === '/v1/outbox' ? { message } : undefined
      const r = await send(app, method, url, { token: full, body, headers })
      expect([method, url, r.status, problemType(r)]).toEqual([
        method,
        url,
        400,
        'urn:outbox-mailer:problem:validation_failed',
      ])
      expect((r.body as { errors?: unknown[] }).errors?.length).toBeGreaterThan(0)
    }
  })

  test('a limit of 20 digits is one problem, the 200 it passes, not also a bound of 2^53 the document never states', async () => {
    for (const limit of ['201', '99999999999999999999']) {
      const r = await send(app, 'GET', `/v1/outbox?limit=${limit}`, { token: full })
      expect([limit, r.status, (r.body as { errors?: unknown[] }).errors]).toEqual([
        limit,
        400,
        [{ path: 'limit', message: `must be at most 200 (given "${limit}")` }],
      ])
    }
  })

  test('a bulk limit of 1e20 is one problem, the 1000 it passes; 1.5 is one too, a whole number', async () => {
    for (const url of ['/v1/outbox/cancel', '/v1/outbox/retry']) {
      for (const [limit, message] of [
        [1e20, 'must be at most 1000'],
        [1.5, 'must be a whole number'],
      ] as const) {
        const body = { filter: { tenant: 'none' }, dryRun: true, limit }
        const r = await send(app, 'POST', url, { token: full, body })
        expect([url, limit, r.status, (r.body as { errors?: unknown[] }).errors]).toEqual([
          url,
          limit,
          400,
          [{ path: 'limit', message }],
        ])
      }
    }
  })

  test('every parameter the document declares is accepted with a value of its schema', async () => {
    const id = await enqueueSql(t.pool)
    await enqueueSql(t.pool)
    const page = await send(app, 'GET', '/v1/outbox?limit=1', { token: full })
    const values: Record<string, string> = {
      db: 'default',
      status: 'pending',
      tenant: 'default',
      dedupeKey: 'k',
      correlationId: 'c',
      lastErrorCode: 'throttled',
      template: 'inquiry',
      mayHaveBeenDelivered: 'false',
      limit: '5',
      cursor: (page.body as { nextCursor: string }).nextCursor,
      'idempotency-key': 'declared-header',
      'X-Request-Id': 'declared-request-id',
    }
    for (const key of Object.keys(samples(id))) {
      const [method, path] = key.split(' ') as [string, string]
      const op = doc.paths[path]![method.toLowerCase()]!
      for (const p of op.parameters ?? []) {
        if (p.in === 'path') continue
        // A row of its own per request: a row's action, asked twice, is a 409 the second time.
        const row = await enqueueSql(t.pool)
        if (path.endsWith('/retry')) await setState(t.pool, row, 'cancelled')
        const s = samples(row)[key]!
        const value = values[p.name] ?? String(p.schema?.example ?? '')
        expect([key, p.name, value]).not.toContain('')
        const url =
          p.in === 'query'
            ? `${s.url}${s.url.includes('?') ? '&' : '?'}${p.name}=${encodeURIComponent(value)}`
            : s.url
        const headers = p.in === 'header' ? { [p.name]: value } : undefined
        const r = await send(app, method, url, { token: full, body: s.body, headers })
        expect([key, p.name, r.status < 400]).toEqual([key, p.name, true])
      }
    }
  })

  test('the largest id is a 404, not a 400 or 500; an empty ?db= is no ?db=', async () => {
    expect((await send(app, 'GET', '/v1/outbox/9223372036854775807', { token: full })).status).toBe(
      404,
    )
    expect((await send(app, 'GET', '/v1/outbox?db=', { token: full })).status).toBe(200)
    expect((await send(app, 'GET', '/v1/stats?db=', { token: full })).status).toBe(200)
  })

  test('with several databases a row route without ?db= is a 400', async () => {
    const two = buildApp([
      { name: 'a', db: t.db, pool: t.pool },
      { name: 'b', db: t.db, pool: t.pool },
    ]).app
    for (const [key, s] of Object.entries(samples('1'))) {
      if (!key.includes('/v1/outbox')) continue
      const [method] = key.split(' ') as [string]
      const r = await send(two, method, s.url, { token: full, body: s.body })
      expect([key, r.status]).toEqual([key, 400])
    }
    expect((await send(two, 'GET', '/v1/stats', { token: full })).status).toBe(200)
  })
})

describe('error bodies never echo what the request carried', () => {
  const ADDRESS = 'marker.person@secret.example'
  const SUBJECT = 'Marker subject'
  const TEXT = 'marker body text'
  const markers = [
    ADDRESS,
    'marker.person',
    SUBJECT,
    TEXT,
    'marker-file',
    'marker header',
    'Marker Name',
  ]
  const bad: [string, Record<string, unknown>][] = [
    ['invalid address', { to: `${ADDRESS}@`, subject: SUBJECT, text: TEXT }],
    [
      'control character in a file name',
      {
        to: ADDRESS,
        subject: SUBJECT,
        text: TEXT,
        attachments: [{ filename: 'marker-file.pdf\t', contentBase64: 'AAAA' }],
      },
    ],
    ['no body', { to: ADDRESS, subject: SUBJECT }],
    [
      'unknown recipient key',
      { to: { address: ADDRESS, name: 'Marker Name', x: 1 }, subject: SUBJECT, text: TEXT },
    ],
    ['text of the wrong type', { to: ADDRESS, subject: SUBJECT, text: 42 }],
    ['importance', { to: ADDRESS, subject: SUBJECT, text: TEXT, importance: 'marker header' }],
    [
      'header value',
      { to: ADDRESS, subject: SUBJECT, text: TEXT, headers: { 'X-A': 'marker header\nx' } },
    ],
    [
      'attachment',
      {
        to: ADDRESS,
        subject: SUBJECT,
        text: TEXT,
        attachments: [
          { filename: 'marker-file.pdf', contentBase64: '!!', contentType: 'marker header' },
        ],
      },
    ],
    [
      'attachment content',
      {
        to: ADDRESS,
        subject: SUBJECT,
        text: TEXT,
        attachments: [{ filename: 'marker-file.pdf', contentBase64: '!!marker body text' }],
      },
    ],
  ]

  test('validation failures of an enqueue, from the schema or from SQL', async () => {
    for (const [name, m] of bad) {
      const r = await send(app, 'POST', '/v1/outbox', { token: full, body: { message: m } })
      expect([name, r.status]).toEqual([name, 400])
      const text = JSON.stringify(r.body)
      for (const marker of markers) expect([name, text.includes(marker)]).toEqual([name, false])
    }
  })

  test('malformed JSON, a forbidden tenant and an oversized body', async () => {
    const body = `{"message":{"to":"${ADDRESS}","subject":"${SUBJECT}","text":"${TEXT}"`
    const tenant = await token({ tenant: 'acme' })
    const answers = [
      await send(app, 'POST', '/v1/outbox', {
        token: full,
        body,
        headers: { 'content-type': 'application/json' },
      }),
      await send(app, 'POST', '/v1/outbox', {
        token: tenant,
        body: {
          message: { to: ADDRESS, subject: SUBJECT, text: TEXT },
          options: { tenant: 'other' },
        },
      }),
      await send(app, 'POST', '/v1/outbox', {
        token: full,
        body: {
          message: {
            to: ADDRESS,
            subject: SUBJECT,
            text: TEXT.repeat(Math.ceil(ENQUEUE_BODY_LIMIT_BYTES / TEXT.length)),
          },
        },
      }),
    ]
    expect(answers.map((r) => r.status)).toEqual([400, 403, 413])
    for (const r of answers)
      for (const marker of markers) expect(JSON.stringify(r.body)).not.toContain(marker)
  })
})

describe('the checker', () => {
  test('refuses a HEAD the document does not declare', async () => {
    const getOnly = new OpenAPIHono()
    getOnly.openapi(
      createRoute({ method: 'get', path: '/only-get', responses: { 204: { description: 'x' } } }),
      (c) => c.body(null, 204),
    )
    getOnly.doc31('/openapi.json', { openapi: '3.1.0', info: { title: 'get only', version: '0' } })
    const c = (await contractOf(getOnly as unknown as App))!
    const empty: Sent = { status: 204, headers: new Headers(), body: '', res: new Response() }
    expect(() => c.check('GET', '/only-get', empty)).not.toThrow()
    expect(() => c.check('HEAD', '/only-get', empty)).toThrow(
      'HEAD /only-get is not documented, yet answered 204',
    )
  })

  test('apps serving the same document share its compilation; another document gets its own; each app keeps its own record', async () => {
    const serving = (title: string) => {
      const a = new OpenAPIHono()
      a.openapi(
        createRoute({ method: 'get', path: '/only-get', responses: { 204: { description: 'x' } } }),
        (c) => c.body(null, 204),
      )
      a.doc31('/openapi.json', { openapi: '3.1.0', info: { title, version: '0' } })
      return a as unknown as App
    }
    const one = (await contractOf(serving('one')))!
    const same = (await contractOf(serving('one')))!
    const other = (await contractOf(serving('two')))!
    // An operation is an object of the compiled document: the same object only if it is shared.
    const op = (c: typeof one) => c.operation('GET', '/only-get')?.op
    expect([op(one) === op(same), op(one) === op(other), op(other) === undefined]).toEqual([
      true,
      false,
      false,
    ])
    expect([one === same, one.covered === same.covered]).toEqual([false, false])
  })

  test('refuses an answer without a declared header, or with one off its schema', async () => {
    const real = createContract(doc)
    const answered = await send(app, 'GET', '/healthz')
    const without = new Headers(answered.headers)
    without.delete('x-request-id')
    expect(() => real.check('GET', '/healthz', { ...answered, headers: without })).toThrow(
      'GET /healthz 200: required header X-Request-Id is missing',
    )
    const unsafe = new Headers(answered.headers)
    unsafe.set('x-request-id', 'has spaces <and> more')
    expect(() =>
      real.check('HEAD', '/healthz', { ...answered, headers: unsafe, body: '' }),
    ).toThrow('HEAD /healthz 200: header X-Request-Id does not match its schema')
  })

  test('refuses a problem whose type its response does not name', () => {
    const real = createContract(doc)
    const problem = (status: number, code: string): Sent => ({
      status,
      headers: new Headers({ 'content-type': 'application/problem+json', 'x-request-id': 'r1' }),
      body: { type: `urn:outbox-mailer:problem:${code}`, title: 'x', status, requestId: 'r1' },
      res: new Response(),
    })
    // A list names no row: its 404 is an unknown ?db only. A retry is never a started send.
    expect(() => real.check('GET', '/v1/outbox', problem(404, 'database_unknown'))).not.toThrow()
    expect(() => real.check('GET', '/v1/outbox', problem(404, 'not_found'))).toThrow(
      'GET /v1/outbox 404 body does not match its schema',
    )
    expect(() => real.check('POST', '/v1/outbox/1/retry', problem(409, 'conflict'))).not.toThrow()
    expect(() => real.check('POST', '/v1/outbox/1/retry', problem(409, 'send_started'))).toThrow(
      'POST /v1/outbox/{id}/retry 409 body does not match its schema',
    )
    expect(() => real.check('GET', '/v1/stats', problem(503, 'rate_limited'))).toThrow(
      'GET /v1/stats 503 body does not match its schema',
    )
  })

  test('refuses a header a client acts on that the answer’s response does not declare', async () => {
    const real = createContract(doc)
    const answered = await send(app, 'GET', '/healthz')
    for (const [name, value] of [
      ['retry-after', '5'],
      ['www-authenticate', 'Bearer'],
      ['allow', 'GET, HEAD'],
    ]) {
      const extra = new Headers(answered.headers)
      extra.set(name!, value!)
      expect(() => real.check('GET', '/healthz', { ...answered, headers: extra })).toThrow(
        `GET /healthz 200: header ${name} is not declared`,
      )
    }
  })

  test('refuses an undeclared field, an undeclared status, a HEAD with a body, an undeclared query', async () => {
    const broken = new OpenAPIHono()
    const route = (path: string) =>
      createRoute({
        method: 'get',
        path,
        responses: {
          200: {
            description: 'x',
            content: { 'application/json': { schema: z.object({ id: z.string() }) } },
          },
        },
      })
    broken.openapi(route('/extra'), (c) => c.json({ id: '1', secret: 'x' } as { id: string }, 200))
    broken.openapi(route('/teapot'), (c) => c.json({ id: '1' }, 418 as 200))
    const info = { openapi: '3.1.0', info: { title: 'broken', version: '0' } }
    broken.doc31('/openapi.json', info)
    const b = broken as unknown as App
    await expect(send(b, 'GET', '/extra')).rejects.toThrow(
      'GET /extra 200 body does not match its schema',
    )
    await expect(send(b, 'GET', '/teapot')).rejects.toThrow(
      'GET /teapot 418: the status is not documented',
    )
    // The broken app's document, its HEADs declared as the real one declares them.
    const contract = createContract(
      withHeadOperations(broken.getOpenAPI31Document(info)) as unknown as Doc,
    )
    const headWithBody: Sent = {
      status: 200,
      headers: new Headers({ 'content-type': 'application/json' }),
      body: '{}',
      res: new Response(),
    }
    expect(() => contract.check('HEAD', '/extra', headWithBody)).toThrow(
      'a HEAD answer carries a body',
    )
    expect(() => contract.check('GET', '/nowhere', { ...headWithBody, body: {} })).toThrow(
      'is not documented, yet answered 200',
    )
    const real = createContract(doc)
    expect(real.declared()).toContain('Problem.errors')
    expect(real.queryErrors('GET', '/v1/outbox?limit=5&status=sent&db=default')).toBeNull()
    expect(real.queryErrors('GET', '/v1/outbox?limit=abc')).toContain('?limit=abc: /')
    expect(real.queryErrors('GET', '/v1/outbox?limit=5&limit=6')).toContain('2 times')
    expect(real.queryErrors('GET', '/v1/outbox?status=sent&status=failed&order=oldest')).toBeNull()
    expect(real.queryErrors('GET', '/v1/outbox?status=sent&status=lost')).toContain('?status=')
    expect(real.queryErrors('GET', '/v1/stats?status=sent')).toContain('not a documented parameter')
  })
})

test('every property a response declares is sent by some answer of this file', async () => {
  // Answers not reached above: a row with history, a failed stats database, a validation problem.
  const id = await enqueueSql(t.pool)
  await setState(t.pool, id, 'failed')
  await t.pool.query(
    `insert into mailer.email_attempts (outbox_id, attempt, worker_id, started_at, outcome, http_status, request_id, error_code, error)
     values ($1, 1, 'w1', now(), 'failed', 400, 'req-1', 'ErrorInvalidRecipients', 'rejected')`,
    [id],
  )
  await send(app, 'GET', `/v1/outbox/${id}`, { token: full })
  // A row that renders (this app has no MAIL_FROM, so the row names its sender), a file with it.
  const renders = await enqueueSql(
    t.pool,
    {},
    {
      from: 'Shop <shop@example.com>',
      ...message,
      attachments: [{ filename: 'a.txt', contentBase64: 'aGk=' }],
    },
  )
  const rendered = await send(app, 'GET', `/v1/outbox/${renders}`, { token: full })
  expect((rendered.body as { renderError: unknown }).renderError).toBeNull()
  // A template's row read by a token confined to its tenant: the template's own bcc counted, not shown.
  await t.pool.query(
    `insert into mailer.templates (name, subject, text_body, from_address, to_addresses, bcc_addresses)
     values ('desk', 'Ticket', 'Opened', 'Desk <desk@example.com>', '{"{{email}}"}', '{archive@example.com}')`,
  )
  const ticket = await t.pool.query<{ id: string }>(
    `insert into mailer.email_outbox (tenant, template, source_row)
     values ('acme', 'desk', '{"email": "ann@example.com"}') returning id::text`,
  )
  const hidden = await send(app, 'GET', `/v1/outbox/${ticket.rows[0]!.id}`, {
    token: await token({ tenant: 'acme' }),
  })
  expect((hidden.body as { rendered: unknown }).rendered).toMatchObject({
    hiddenRecipients: { to: 0, cc: 0, bcc: 1 },
  })
  await send(app, 'GET', '/v1/outbox?limit=1', { token: full })
  // A full batch (limit 1): `more`, with the cursor that continues the loop.
  const bulk = await send(app, 'POST', '/v1/outbox/retry', {
    token: full,
    body: { filter: { ids: [id] }, limit: 1 },
  })
  expect(bulk.body).toMatchObject({ more: true, nextCursor: expect.any(String) })
  // A token confined to sender mailboxes is told how many matching rows its retry left.
  const confined = await send(app, 'POST', '/v1/outbox/retry', {
    token: await token({ scope: 'outbox:write', extra: { senders: ['support@shop-a.example'] } }),
    body: { filter: { ids: [id] }, dryRun: true },
  })
  expect((confined.body as { outsideSenders?: unknown }).outsideSenders).toBe(0)
  // A bulk cancel (not a dry run) says how many it cancelled and how many it left to a worker.
  const cancelled = await send(app, 'POST', '/v1/outbox/cancel', {
    token: full,
    body: { filter: { ids: [id] } },
  })
  expect(cancelled.body).toMatchObject({ cancelled: 1, cancelRequested: 0 })
  // A row being sent, its send started, that a bulk cancel passes: named in leftSending.
  // Two of them, limit 1: the lower named, and leftSendingMore says there are more.
  const inFlight = await enqueueSql(t.pool)
  const alsoInFlight = await enqueueSql(t.pool)
  for (const row of [inFlight, alsoInFlight])
    await setState(t.pool, row, 'sending', { sendStarted: true })
  const passed = await send(app, 'POST', '/v1/outbox/cancel', {
    token: full,
    body: { filter: { ids: [inFlight, alsoInFlight] }, limit: 1 },
  })
  expect(passed.body).toMatchObject({
    matched: 0,
    leftSending: [inFlight],
    leftSendingMore: true,
  })
  const dead = openDb({
    name: 'down',
    url: `postgres://nobody@127.0.0.1:${await closedPort()}/x`,
    log: silentLogger,
  })
  const partly = buildApp([
    { name: 'default', db: t.db, pool: t.pool },
    { name: 'down', db: dead.db, pool: dead.pool },
  ]).app
  try {
    expect((await send(partly, 'GET', '/v1/stats', { token: full })).status).toBe(200)
  } finally {
    await dead.close()
  }
  const sent = new Set([...(await contractOf(app))!.sent, ...(await contractOf(partly))!.sent])
  expect(
    createContract(doc)
      .declared()
      .filter((p) => !sent.has(p)),
  ).toEqual([])
})
