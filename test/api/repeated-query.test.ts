// A /v1 query parameter, or the Idempotency-Key header, given more than once: a 400 that says it takes one value.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { buildApp, enqueueSql, type Sent, send } from './support/harness.ts'
import { appOnOwnDatabase } from './support/own-database-app.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const s = appOnOwnDatabase()
const message = { to: 'ada@example.com', subject: 'Hello', text: 'Hi Ada' }

type Doc = {
  paths: Record<
    string,
    Record<string, { parameters?: { name: string; in: string; schema?: { type?: string } }[] }>
  >
}

function expectOneValue(r: Sent, label: string, name: string, also?: RegExp) {
  expect([label, r.status, r.body]).toMatchObject([
    label,
    400,
    {
      type: 'urn:outbox-mailer:problem:validation_failed',
      errors: [{ path: name, message: expect.stringContaining('takes one value') }],
    },
  ])
  const detail = (r.body as { detail: string }).detail
  expect([label, detail]).not.toEqual([label, expect.stringContaining('Invalid')])
  if (also) expect([label, detail]).toEqual([label, expect.stringMatching(also)])
}

describe('a repeated query parameter', () => {
  test('?status= repeated lists the rows of each status (one value each), not a 400', async () => {
    const r = await send(s.app, 'GET', '/v1/outbox?status=sent&status=failed', { token: s.tk })
    expect(r.status).toBe(200)
  })

  test('every query parameter of every /v1 operation, each given twice with a valid value', async () => {
    const id = await enqueueSql(s.t.pool)
    await enqueueSql(s.t.pool)
    const page = await send(s.app, 'GET', '/v1/outbox?limit=1', { token: s.tk })
    const valid: Record<string, string> = {
      db: 'default',
      status: 'pending',
      order: 'oldest',
      tenant: 'default',
      createdFrom: '2030-01-01T00:00:00Z',
      createdTo: '2030-01-01T00:00:00Z',
      sentFrom: '2030-01-01T00:00:00Z',
      sentTo: '2030-01-01T00:00:00Z',
      dedupeKey: 'k',
      correlationId: 'c',
      lastErrorCode: 'throttled',
      mayHaveBeenDelivered: 'false',
      template: 'inquiry',
      limit: '5',
      cursor: (page.body as { nextCursor: string }).nextCursor,
    }
    const bodies: Record<string, unknown> = {
      'POST /v1/outbox': { message },
      'POST /v1/outbox/cancel': { filter: { ids: [id] } },
      'POST /v1/outbox/retry': { filter: { ids: [id] } },
    }
    const doc = (await (await s.app.request('/openapi.json')).json()) as Doc
    let checked = 0
    for (const [path, ops] of Object.entries(doc.paths)) {
      if (!path.startsWith('/v1/')) continue
      for (const [method, op] of Object.entries(ops)) {
        const key = `${method.toUpperCase()} ${path}`
        for (const p of op.parameters ?? []) {
          // An array parameter (the list's status) is repeated for several values.
          if (p.in !== 'query' || p.schema?.type === 'array') continue
          const value = valid[p.name]
          expect([key, p.name, value === undefined]).toEqual([key, p.name, false])
          const q = `${p.name}=${encodeURIComponent(value!)}`
          const url = `${path.replace('{id}', id)}?${q}&${q}`
          const r = await send(s.app, method.toUpperCase(), url, { token: s.tk, body: bodies[key] })
          // A HEAD answers as its GET without the body: its status is what shows.
          if (method === 'head') expect([key, p.name, r.status]).toEqual([key, p.name, 400])
          else expectOneValue(r, `${key} ${p.name}`, p.name)
          checked++
        }
      }
    }
    // The list's 15 but status (GET and HEAD), and db on the 9 other operations (two of them HEADs).
    expect(checked).toBe(14 * 2 + 9)
    // Nothing was enqueued, cancelled or retried.
    const rows = await s.t.pool.query(
      'select status, count(*)::int as n from mailer.email_outbox group by 1',
    )
    expect(rows.rows).toEqual([{ status: 'pending', n: 2 }])
  })

  test('?db= twice is a 400 even when the first names no database, or with several configured', async () => {
    const unknownFirst = await send(s.app, 'GET', '/v1/outbox?db=nope&db=default', { token: s.tk })
    expectOneValue(unknownFirst, 'unknown first', 'db')
    const two = buildApp([
      { name: 'a', db: s.t.db, pool: s.t.pool },
      { name: 'b', db: s.t.db, pool: s.t.pool },
    ]).app
    for (const path of ['/v1/outbox?db=a&db=b', '/v1/stats?db=a&db=b', '/v1/outbox?db=a&db=a']) {
      expectOneValue(await send(two, 'GET', path, { token: s.tk }), path, 'db')
    }
  })

  test('one value each still works, and a parameter given once beside a repeated one is not named', async () => {
    const ok = await send(s.app, 'GET', '/v1/outbox?status=pending&limit=5&db=default', {
      token: s.tk,
    })
    expect(ok.status).toBe(200)
    const r = await send(s.app, 'GET', '/v1/outbox?status=pending&limit=5&limit=6', { token: s.tk })
    expectOneValue(r, 'limit', 'limit')
  })
})

describe('a repeated Idempotency-Key header', () => {
  test('arrives comma-joined and is a 400 saying it takes one value, not a key "a, b"', async () => {
    // Fetch (and Bun's server) join a header given twice with ", ": the route sees one value.
    const repeated = new Headers([
      ['idempotency-key', 'order-7'],
      ['idempotency-key', 'order-8'],
    ])
    const headers = Object.fromEntries(repeated)
    expect(headers).toEqual({ 'idempotency-key': 'order-7, order-8' })
    const r = await send(s.app, 'POST', '/v1/outbox', { token: s.tk, body: { message }, headers })
    expectOneValue(r, 'Idempotency-Key', 'idempotency-key', /given 2/)
    const rows = await s.t.pool.query('select count(*)::int as n from mailer.email_outbox')
    expect(rows.rows).toEqual([{ n: 0 }])
  })

  test('one key with a comma but no space after it is still one key', async () => {
    const headers = { 'idempotency-key': 'order-7,line-2' }
    const r = await send(s.app, 'POST', '/v1/outbox', { token: s.tk, body: { message }, headers })
    expect(r.status).toBe(201)
    const dedupe = await s.t.pool.query('select dedupe_key from mailer.email_outbox')
    expect(dedupe.rows).toEqual([{ dedupe_key: 'order-7,line-2' }])
  })
})
