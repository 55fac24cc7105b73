// The generated OpenAPI document is valid, and every response it documents is produced and matches.
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { Validator } from '@seriousme/openapi-schema-validator'
import Ajv2020 from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import { BODY_LIMIT_BYTES, ENQUEUE_BODY_LIMIT_BYTES } from '../../src/api/body-limits.ts'
import { openDb } from '../../src/db/open.ts'
import { silentLogger } from '../../src/log.ts'
import { closedPort } from '../support/closed-port.ts'
import { createTestDb, useTestDb } from '../support/db.ts'
import { closeSchema, type Schema } from './support/closed-schema.ts'
import { createContract } from './support/contract.ts'
import { fakeHealth } from './support/fake-health.ts'
import {
  type App,
  appOnDefault,
  buildApp,
  enqueueSql,
  type Sent,
  send,
  setState,
} from './support/harness.ts'
import { token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787). Each request
// is checked against the document two or three times (and a GET's HEAD too): a test of a route
// family takes ~3 s quiet and past 30 s at load 40. The bound only ends a run left waiting.
setDefaultTimeout(180_000)

const t = useTestDb()
let app: App
let contract: ReturnType<typeof createContract>
let doc: Parameters<typeof createContract>[0]
const health = fakeHealth()

beforeAll(async () => {
  app = appOnDefault(t, { health }).app
  doc = (await (await app.request('/openapi.json')).json()) as typeof doc
  contract = createContract(doc)
})

/** The request, checked; a GET's HEAD too, which must answer as the GET does (its status). */
async function call(target: App, method: string, url: string, o: Parameters<typeof send>[3] = {}) {
  const r = contract.check(method, url, await send(target, method, url, o))
  if (method === 'GET') {
    const head = contract.check('HEAD', url, await send(target, 'HEAD', url, o))
    expect(['HEAD', url, head.status]).toEqual(['HEAD', url, r.status])
  }
  return r
}

const message = { to: 'ada@example.com', subject: 'Hello', text: 'Hi Ada' }

test('the generated document is a valid OpenAPI 3.1 document', async () => {
  const result = await new Validator().validate(doc as never)
  expect(result.errors ?? []).toEqual([])
  expect(result.valid).toBe(true)
  expect((doc as unknown as { openapi: string }).openapi).toBe('3.1.0')
})

test('every example in the document is valid for the schema it illustrates (closed: no undeclared field)', () => {
  const ajv = new Ajv2020({ strict: false, allErrors: true })
  addFormats(ajv)
  const schemas = doc.components.schemas as Record<string, Schema>
  const components = closeSchema(doc.components, schemas)
  const wrong: string[] = []
  let seen = 0
  // An example sits on a schema (a component, a property, an item, a parameter's schema).
  const walk = (node: unknown, at: string) => {
    if (node === null || typeof node !== 'object') return
    const { example, ...schema } = node as Record<string, unknown>
    if (example !== undefined && !at.endsWith('/properties')) {
      seen++
      const valid = ajv.compile({ ...closeSchema(schema as Schema, schemas), components })
      if (!valid(example))
        wrong.push(`${at}: ${JSON.stringify(example)} ${ajv.errorsText(valid.errors)}`)
    }
    for (const [k, v] of Object.entries(node)) if (k !== 'example') walk(v, `${at}/${k}`)
  }
  walk({ components: doc.components, paths: doc.paths }, '')
  expect(wrong).toEqual([])
  // The enqueue body, its recipients, the row's ids and times, each parameter's: not none.
  expect(seen).toBeGreaterThan(20)
})

test('DESIGN.md’s HTTP section, route by route: each status it names is declared, problems as problem+json', () => {
  type Responses = Record<string, { content?: Record<string, unknown> }>
  const responses = (method: string, path: string) =>
    (doc.paths as unknown as Record<string, Record<string, { responses: Responses }>>)[path]?.[
      method
    ]?.responses ?? {}
  // DESIGN.md: health and readiness (503 with per-database detail), metrics, list, one row (another
  // tenant's row is 404), enqueue (201, 200 for a repeated Idempotency-Key), cancel (200 pending,
  // 202 claimed, 409 sent or failed), retry (200, 409 sent), stats; every /v1 route 401 and 403.
  const design: [string, string, number[]][] = [
    ['get', '/healthz', [200]],
    ['get', '/readyz', [200, 503]],
    ['get', '/metrics', [200]],
    ['get', '/v1/outbox', [200, 401, 403]],
    ['get', '/v1/outbox/{id}', [200, 401, 403, 404]],
    ['post', '/v1/outbox', [200, 201, 401, 403]],
    ['post', '/v1/outbox/{id}/cancel', [200, 202, 401, 403, 404, 409]],
    ['post', '/v1/outbox/{id}/retry', [200, 401, 403, 404, 409]],
    ['get', '/v1/stats', [200, 401, 403]],
  ]
  for (const [method, path, statuses] of design) {
    const declared = responses(method, path)
    for (const status of statuses) {
      const media = Object.keys(declared[String(status)]?.content ?? {})
      // Health's 503 is its report (application/json); a /v1 error is a problem.
      const problem = status >= 400 && path.startsWith('/v1/')
      const want = problem ? ['application/problem+json'] : [expect.any(String)]
      expect([method, path, status, media]).toEqual([method, path, status, want])
    }
  }
})

test('DESIGN.md’s JSON names: a row is its columns in camelCase (id a string), a list {items, nextCursor} paged by limit and cursor, an enqueue {id}, one row adds history', async () => {
  // Each name as DESIGN.md writes it: the document and the app could be renamed together, and a
  // contract check against the served document alone would still pass.
  const w = await token()
  const created = await call(app, 'POST', '/v1/outbox', {
    token: w,
    body: { message, options: { tenant: 'acme' } },
    headers: { 'Idempotency-Key': 'design-names' },
  })
  expect([created.status, Object.keys(created.body as object)]).toEqual([201, ['id']])
  const id = (created.body as { id: unknown }).id
  expect(id).toBeString()
  const row = (await call(app, 'GET', `/v1/outbox/${id}`, { token: w })).body as Record<
    string,
    unknown
  >
  const columns = [
    'id',
    'status',
    'tenant',
    'dedupeKey',
    'priority',
    'sendAt',
    'attempts',
    'maxAttempts',
    'lastErrorCode',
    'lastError',
    'createdAt',
    'sentAt',
    'leaseOwner',
    'leaseToken',
    'leaseExpiresAt',
    'message',
    'history',
  ]
  expect(columns.filter((k) => !(k in row))).toEqual([])
  expect(row).toMatchObject({ id, status: 'pending', tenant: 'acme', dedupeKey: 'design-names' })
  expect(row.history).toBeArray()
  await enqueueSql(t.pool)
  const page = await call(app, 'GET', '/v1/outbox?limit=1&status=pending', { token: w })
  const body = page.body as { items: { id: string }[]; nextCursor: string | null }
  expect([Object.keys(body).sort(), body.items.length, body.nextCursor]).toEqual([
    ['items', 'nextCursor'],
    1,
    expect.any(String),
  ])
  const next = await call(
    app,
    'GET',
    `/v1/outbox?limit=1&status=pending&cursor=${body.nextCursor}`,
    {
      token: w,
    },
  )
  expect((next.body as typeof body).items.map((r) => r.id)).not.toContain(body.items[0]!.id)
  // The list's filters and paging, and ?db=, by DESIGN.md's names.
  type Params = { parameters: { name: string }[] }
  const list = (doc.paths as unknown as Record<string, Record<string, Params>>)['/v1/outbox']!.get!
  expect(
    ['status', 'tenant', 'limit', 'cursor', 'db'].filter(
      (n) => !list.parameters.some((p) => p.name === n),
    ),
  ).toEqual([])
})

test('the checker rejects a body that breaks its schema and an undocumented status', async () => {
  const fake = (status: number, body: unknown): Sent => ({
    status,
    body,
    headers: new Headers({ 'content-type': 'application/json', 'x-request-id': 'r1' }),
    res: new Response(),
  })
  expect(() =>
    createContract(doc).check('GET', '/v1/stats', fake(200, { databases: [{}] })),
  ).toThrow('does not match')
  expect(() => createContract(doc).check('GET', '/v1/stats', fake(418, {}))).toThrow(
    'not documented',
  )
})

test('with METRICS_PORT the document describes no /metrics: the API port does not serve it', async () => {
  const apart = appOnDefault(t, {
    health,
    metricsApart: true,
  }).app
  expect((await apart.request('/metrics')).status).toBe(404)
  type Doc = { paths: Record<string, unknown>; tags: unknown[] }
  const served = (await (await apart.request('/openapi.json')).json()) as Doc
  expect(Object.keys(served.paths)).not.toContain('/metrics')
  expect(served.tags).toContainEqual({
    name: 'operations',
    description: 'Health, readiness (no token)',
  })
  const together = (await (await app.request('/openapi.json')).json()) as Doc
  expect(Object.keys(together.paths)).toContain('/metrics')
  expect(JSON.stringify(together.tags)).toContain('metrics')
})

test('the docs page is served and points at the document', async () => {
  const res = await app.request('/docs')
  expect(res.status).toBe(200)
  expect(await res.text()).toContain('/openapi.json')
})

test('the docs page loads one pinned, integrity-checked script, and its policy allows only that', async () => {
  const res = await app.request('/docs')
  const html = await res.text()
  const src = /<script src="([^"]+)"([^>]*)><\/script>/.exec(html)
  expect(src?.[1]).toMatch(
    /^https:\/\/cdn\.jsdelivr\.net\/npm\/@scalar\/api-reference@\d+\.\d+\.\d+\/dist\/browser\/standalone\.js$/,
  )
  expect(src?.[2]).toMatch(/ integrity="sha384-[A-Za-z0-9+/]{64}"/)
  expect(src?.[2]).toContain(' crossorigin="anonymous"')
  // The page's one inline script (the reference's start), allowed by its hash, and no other.
  const inline = [...html.matchAll(/<script(?: [^>]*)?>([\s\S]*?)<\/script>/g)]
    .filter((m) => !m[0].startsWith('<script src='))
    .map((m) => m[1]!)
  expect(inline).toHaveLength(1)
  const hash = new Bun.CryptoHasher('sha256').update(inline[0]!).digest('base64')
  const csp = res.headers.get('content-security-policy') ?? ''
  const scriptSrc = /(?:^|;\s*)script-src ([^;]+)/.exec(csp)?.[1]?.trim().split(/\s+/)
  expect(scriptSrc?.sort()).toEqual([`'sha256-${hash}'`, src![1]!].sort())
  expect(csp).toContain("object-src 'none'")
})

describe('every documented response', () => {
  test('health, readiness and metrics', async () => {
    await call(app, 'GET', '/healthz')
    await call(app, 'GET', '/readyz')
    const metrics = await call(app, 'GET', '/metrics')
    expect(metrics.headers.get('content-type')).toStartWith('text/plain')
    health.live = { ok: false, problems: ['worker loop of default has not run for 300 s'] }
    health.states[0]!.reachable = false
    expect((await call(app, 'GET', '/healthz')).status).toBe(503)
    expect((await call(app, 'GET', '/readyz')).status).toBe(503)
    health.live = { ok: true, problems: [] }
    health.states[0]!.reachable = true
  })

  test('success statuses of the outbox routes', async () => {
    const w = await token()
    expect((await call(app, 'POST', '/v1/outbox', { token: w, body: { message } })).status).toBe(
      201,
    )
    const created = await call(app, 'POST', '/v1/outbox', {
      token: w,
      body: { message },
      headers: { 'idempotency-key': 'k1' },
    })
    expect(created.status).toBe(201)
    const again = await call(app, 'POST', '/v1/outbox', {
      token: w,
      body: { message },
      headers: { 'idempotency-key': 'k1' },
    })
    expect(again.status).toBe(200)
    const reused = await call(app, 'POST', '/v1/outbox', {
      token: w,
      body: { message: { ...message, subject: 'Another' } },
      headers: { 'idempotency-key': 'k1' },
    })
    expect([reused.status, (reused.body as { type: string }).type]).toEqual([
      422,
      'urn:outbox-mailer:problem:idempotency_key_reused',
    ])
    const id = (created.body as { id: string }).id
    await t.pool.query(
      `insert into mailer.email_attempts (outbox_id, attempt, worker_id, started_at, outcome, http_status, request_id, error_code, error)
       values ($1, 1, 'w1', now(), 'retry', 503, 'req-1', 'ServiceUnavailable', 'try later')`,
      [id],
    )
    expect((await call(app, 'GET', '/v1/outbox?limit=1', { token: w })).status).toBe(200)
    expect((await call(app, 'GET', `/v1/outbox/${id}`, { token: w })).status).toBe(200)
    expect((await call(app, 'GET', '/v1/stats', { token: w })).status).toBe(200)
    expect((await call(app, 'POST', `/v1/outbox/${id}/cancel`, { token: w })).status).toBe(200)
    expect((await call(app, 'POST', `/v1/outbox/${id}/cancel`, { token: w })).status).toBe(409)
    expect((await call(app, 'POST', `/v1/outbox/${id}/retry`, { token: w })).status).toBe(200)
    expect((await call(app, 'POST', `/v1/outbox/${id}/retry`, { token: w })).status).toBe(409)
    await setState(t.pool, id, 'sending')
    expect((await call(app, 'POST', `/v1/outbox/${id}/cancel`, { token: w })).status).toBe(202)
    await setState(t.pool, id, 'sending', { sendStarted: true })
    const started = await call(app, 'POST', `/v1/outbox/${id}/cancel`, { token: w })
    expect([started.status, (started.body as { type: string }).type]).toEqual([
      409,
      'urn:outbox-mailer:problem:send_started',
    ])
    const other = await enqueueSql(t.pool)
    const bulk = { filter: { ids: [other] } }
    expect((await call(app, 'POST', '/v1/outbox/cancel', { token: w, body: bulk })).status).toBe(
      200,
    )
    expect((await call(app, 'POST', '/v1/outbox/retry', { token: w, body: bulk })).status).toBe(200)
    // Announced, as an HTTP client sends it: refused by its Content-Length, never read (a body
    // read to its end before the 413 is conformance.test.ts's and large-body-slots.test.ts's).
    const big = 'x'.repeat(ENQUEUE_BODY_LIMIT_BYTES + 1)
    const tooLarge = await call(app, 'POST', '/v1/outbox', {
      token: w,
      body: big,
      headers: { 'content-length': String(big.length) },
    })
    expect(tooLarge.status).toBe(413)
  })

  const routes = (id: string) => [
    { method: 'GET', url: '/v1/outbox', scope: 'outbox:write', invalid: '/v1/outbox?limit=0' },
    { method: 'GET', url: `/v1/outbox/${id}`, scope: 'outbox:write', invalid: '/v1/outbox/abc' },
    { method: 'GET', url: '/v1/stats', scope: 'outbox:write', invalid: '/v1/stats?db=a&db=b' },
    {
      method: 'POST',
      url: '/v1/outbox',
      scope: 'outbox:read',
      body: { message },
      invalid: '/v1/outbox',
      invalidBody: { message: { ...message, to: 'not-an-address' } },
    },
    {
      method: 'POST',
      url: `/v1/outbox/${id}/cancel`,
      scope: 'outbox:read',
      invalid: '/v1/outbox/x/cancel',
    },
    {
      method: 'POST',
      url: `/v1/outbox/${id}/retry`,
      scope: 'outbox:read',
      invalid: '/v1/outbox/0/retry',
    },
    {
      method: 'POST',
      url: '/v1/outbox/cancel',
      scope: 'outbox:read',
      body: { filter: { ids: [id] } },
      invalid: '/v1/outbox/cancel',
      invalidBody: { filter: {} },
    },
    {
      method: 'POST',
      url: '/v1/outbox/retry',
      scope: 'outbox:read',
      body: { filter: { ids: [id] }, dryRun: true },
      invalid: '/v1/outbox/retry',
      invalidBody: { filter: { status: ['sent'] } },
    },
  ]

  test('400, 401, 403 and 404 of every /v1 route', async () => {
    const id = await enqueueSql(t.pool)
    const full = await token()
    for (const r of routes(id)) {
      const name = `${r.method} ${r.url}`
      expect([name, (await call(app, r.method, r.url, { body: r.body })).status]).toEqual([
        name,
        401,
      ])
      const wrongScope = await token({ scope: r.scope })
      expect([
        name,
        (await call(app, r.method, r.url, { token: wrongScope, body: r.body })).status,
      ]).toEqual([name, 403])
      const sep = r.url.includes('?') ? '&' : '?'
      const unknownDb = await call(app, r.method, `${r.url}${sep}db=nope`, {
        token: full,
        body: r.body,
      })
      expect([name, unknownDb.status]).toEqual([name, 404])
      if (r.invalid) {
        const bad = await call(app, r.method, r.invalid, {
          token: full,
          body: r.invalidBody ?? r.body,
        })
        expect([name, bad.status]).toEqual([name, 400])
      }
    }
    const missing = await call(app, 'GET', '/v1/outbox/999999', { token: full })
    expect(missing.status).toBe(404)
  })

  test('429 of every /v1 route', async () => {
    const limited = appOnDefault(t, {
      rateLimitPerMinute: 1,
    }).app
    const id = await enqueueSql(t.pool)
    let n = 0
    for (const r of routes(id)) {
      const tk = await token({ sub: `limited-${n++}` })
      await send(limited, 'GET', '/v1/stats', { token: tk })
      const res = await call(limited, r.method, r.url, { token: tk, body: r.body })
      expect([r.url, res.status]).toEqual([r.url, 429])
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0)
    }
  })

  test('503 of every /v1 route when the database is unreachable', async () => {
    const dead = openDb({
      name: 'default',
      url: `postgres://nobody@127.0.0.1:${await closedPort()}/nothing`,
      log: silentLogger,
    })
    try {
      const down = appOnDefault(dead).app
      const tk = await token()
      for (const r of routes('1')) {
        const res: Sent = await call(down, r.method, r.url, { token: tk, body: r.body })
        expect([r.url, res.status]).toEqual([r.url, 503])
      }
      // Stats of several databases, one of them down: 200, that one with its problem.
      const partly = buildApp([
        { name: 'default', db: t.db, pool: t.pool },
        { name: 'down', db: dead.db, pool: dead.pool },
      ]).app
      const stats = await call(partly, 'GET', '/v1/stats', { token: tk })
      expect(stats.status).toBe(200)
      expect((stats.body as { databases: unknown[] }).databases).toEqual([
        expect.objectContaining({ name: 'default', counts: expect.any(Object) }),
        {
          name: 'down',
          problem: expect.objectContaining({
            status: 503,
            type: 'urn:outbox-mailer:problem:database_unavailable',
          }),
        },
      ])
    } finally {
      await dead.close()
    }
  })

  test('500 of every /v1 route: a database error that is no outage, nor a schema or privilege gone, nothing of it echoed', async () => {
    const broken = await createTestDb()
    try {
      // Columns no statement knows (42703): a schema changed by hand, or a bug. A schema dropped is a
      // 503 (schema-gone.test.ts).
      await broken.pool.query(
        'alter table mailer.email_outbox rename column id to id_renamed; alter table mailer.email_outbox rename column status to status_renamed',
      )
      const b = appOnDefault(broken).app
      const tk = await token()
      for (const r of routes('1')) {
        const res = await call(b, r.method, r.url, { token: tk, body: r.body })
        const { type, detail } = res.body as { type: string; detail: string }
        // The cause (column "id" does not exist) is logged, never answered.
        expect([r.url, res.status, type, detail]).toEqual([
          r.url,
          500,
          'urn:outbox-mailer:problem:internal',
          'internal error; quote the request id',
        ])
      }
    } finally {
      await broken.drop()
    }
  })

  test('413 of every POST route and 415 of every route that takes JSON, each with its code', async () => {
    const w = await token()
    const id = await enqueueSql(t.pool)
    const problem = (r: Sent) => {
      const b = r.body as { type: string; title: string; detail: string }
      return [r.status, b.type, b.title, b.title === b.detail]
    }
    const big = 'x'.repeat(BODY_LIMIT_BYTES + 1)
    for (const url of [
      '/v1/outbox',
      '/v1/outbox/cancel',
      '/v1/outbox/retry',
      `/v1/outbox/${id}/cancel`,
      `/v1/outbox/${id}/retry`,
    ]) {
      const body = url === '/v1/outbox' ? 'x'.repeat(ENQUEUE_BODY_LIMIT_BYTES + 1) : big
      // Announced: refused by its Content-Length, as "success statuses" above says.
      const r = await call(app, 'POST', url, {
        token: w,
        body,
        headers: { 'content-length': String(body.length) },
      })
      expect([url, ...problem(r)]).toEqual([
        url,
        413,
        'urn:outbox-mailer:problem:payload_too_large',
        'The body is too large',
        false,
      ])
    }
    for (const [url, body] of [
      ['/v1/outbox', { message }],
      ['/v1/outbox/cancel', { filter: { ids: [id] } }],
      ['/v1/outbox/retry', { filter: { ids: [id] } }],
    ] as const) {
      const r = await call(app, 'POST', url, {
        token: w,
        body: JSON.stringify(body),
        headers: { 'content-type': 'text/plain' },
      })
      expect([url, ...problem(r)]).toEqual([
        url,
        415,
        'urn:outbox-mailer:problem:unsupported_media_type',
        'The body must be application/json',
        false,
      ])
    }
  })

  test('were all produced', () => {
    const missing = contract.documented().filter((k) => !contract.covered.has(k))
    expect(missing).toEqual([])
  })
})

test("README's GET /v1/stats row names every figure a database's entry carries", async () => {
  type Doc = { components: { schemas: Record<string, { properties: Record<string, unknown> }> } }
  const doc = (await (await app.request('/openapi.json')).json()) as Doc
  const readme = await Bun.file(new URL('../../README.md', import.meta.url)).text()
  const row = readme.split('\n').find((l) => l.startsWith('| `GET /v1/stats` |')) ?? ''
  // name, counts and the oldest pending age are what the row opens with, in words.
  const figures = Object.keys(doc.components.schemas.DatabaseStats!.properties).filter(
    (k) => !['name', 'counts', 'oldestPendingAgeSeconds'].includes(k),
  )
  expect(figures.filter((k) => !row.includes(`\`${k}\``))).toEqual([])
})
