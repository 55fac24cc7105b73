// A query string's malformed percent-encoding (%E0%A4%A, %ZZ, a lone %): a 400 naming the parameter, never matched as its literal text.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { enqueueSql, send } from './support/harness.ts'
import { appOnOwnDatabase } from './support/own-database-app.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const s = appOnOwnDatabase()

describe('malformed percent-encoding in the query', () => {
  test.each([
    ['tenant', '/v1/outbox?tenant=%E0%A4%A', '%E0%A4%A'],
    ['tenant', '/v1/outbox?tenant=%ZZ', '%ZZ'],
    ['tenant', '/v1/outbox?tenant=acme%', '%'],
    ['dedupeKey', '/v1/outbox?dedupeKey=k%FFk', '%FF'],
    ['correlationId', '/v1/outbox?limit=5&correlationId=%C0%AF', '%C0%AF'],
    ['db', '/v1/outbox?db=%E0%A4%A', '%E0%A4%A'],
    ['db', '/v1/outbox/1?db=%E0%A4', '%E0%A4'],
    ['db', '/v1/outbox/1/cancel?db=%ED%A0%80', '%ED%A0%80'],
  ])('%s in %s: a 400 naming it and its bad sequence', async (name, url, bad) => {
    await enqueueSql(s.t.pool, { tenant: 'acme' })
    const method = url.endsWith('/cancel') || url.includes('/cancel?') ? 'POST' : 'GET'
    const r = await send(s.app, method, url, { token: s.tk })
    expect([url, r.status, r.body]).toMatchObject([
      url,
      400,
      {
        type: 'urn:outbox-mailer:problem:validation_failed',
        errors: [{ path: name, message: expect.stringContaining(`"${bad}"`) }],
      },
    ])
    expect((r.body as { detail: string }).detail).toContain('percent-encoding')
  })

  test('a parameter name badly encoded is named as it came', async () => {
    const r = await send(s.app, 'GET', '/v1/outbox?ten%E0ant=x', { token: s.tk })
    expect([r.status, r.body]).toMatchObject([
      400,
      { errors: [{ path: 'ten%E0ant', message: expect.stringContaining('"%E0"') }] },
    ])
  })

  test('well-formed escapes still decode: %25 is a literal %, UTF-8 sequences are their letters', async () => {
    const id = await enqueueSql(s.t.pool, { tenant: 'acme', dedupeKey: '50%-off ü' })
    const r = await send(s.app, 'GET', '/v1/outbox?dedupeKey=50%25-off%20%C3%BC&tenant=acme', {
      token: s.tk,
    })
    expect([r.status, (r.body as { items: { id: string }[] }).items.map((i) => i.id)]).toEqual([
      200,
      [id],
    ])
  })
})
