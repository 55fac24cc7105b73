// A `db` claim confines a token to one configured database: with a database per customer, a token for one reaches none of the other's rows.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { createTestDb, type TestDb, useTestDb } from '../support/db.ts'
import { type App, buildApp, enqueueSql, send, setState } from './support/harness.ts'
import { token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
let other: TestDb
let app: App

beforeAll(async () => {
  other = await createTestDb()
  app = buildApp([
    { name: 'shop', db: t.db, pool: t.pool },
    { name: 'other', db: other.db, pool: other.pool },
  ]).app
})
afterAll(async () => {
  await other.drop()
})

const typeOf = (r: { body: unknown }) => (r.body as { type?: string }).type
const message = { to: 'ada@example.com', subject: 'Hi', text: 'Hello' }

describe('a token whose db claim names one database', () => {
  test('reaches none of another database’s rows: each route answers as for a database not configured, naming only its own', async () => {
    const shopOnly = await token({ extra: { db: 'shop' } })
    const theirs = await enqueueSql(other.pool)
    const failed = await enqueueSql(other.pool)
    await setState(other.pool, failed, 'failed')
    const asked: [string, string, unknown?][] = [
      ['GET', `/v1/outbox/${theirs}?db=other`],
      ['GET', '/v1/outbox?db=other'],
      ['GET', '/v1/stats?db=other'],
      ['POST', `/v1/outbox/${theirs}/cancel?db=other`],
      ['POST', `/v1/outbox/${failed}/retry?db=other`],
      ['POST', '/v1/outbox/cancel?db=other', { filter: { status: ['pending'] } }],
      ['POST', '/v1/outbox/retry?db=other', { filter: { status: ['failed'] } }],
      ['POST', '/v1/outbox?db=other', { message }],
    ]
    for (const [method, path, body] of asked) {
      const r = await send(app, method, path, { token: shopOnly, body })
      expect([method, path, r.status, typeOf(r), (r.body as { detail: string }).detail]).toEqual([
        method,
        path,
        404,
        'urn:outbox-mailer:problem:database_unknown',
        'no database named "other"; configured: shop',
      ])
    }
    // Nothing changed there.
    const { rows } = await other.pool.query(
      'select status, count(*)::int as n from mailer.email_outbox group by 1 order by 1',
    )
    expect(rows).toEqual([
      { status: 'failed', n: 1 },
      { status: 'pending', n: 1 },
    ])
  })

  test('needs no ?db=: its own database is the one, and /v1/stats reports it alone', async () => {
    const shopOnly = await token({ extra: { db: 'shop' } })
    const mine = await enqueueSql(t.pool)
    await enqueueSql(other.pool)
    const listed = await send(app, 'GET', '/v1/outbox', { token: shopOnly })
    expect(listed.status).toBe(200)
    expect((listed.body as { items: { id: string }[] }).items.map((i) => i.id)).toEqual([mine])
    expect((await send(app, 'GET', `/v1/outbox/${mine}?db=shop`, { token: shopOnly })).status).toBe(
      200,
    )
    const stats = await send(app, 'GET', '/v1/stats', { token: shopOnly })
    expect((stats.body as { databases: { name: string }[] }).databases.map((d) => d.name)).toEqual([
      'shop',
    ])
    // The row it enqueues without ?db= is named with its database: a Location another token follows
    // (one reaching both databases) must say which.
    const created = await send(app, 'POST', '/v1/outbox', { token: shopOnly, body: { message } })
    const location = `/v1/outbox/${(created.body as { id: string }).id}?db=shop`
    expect([created.status, created.headers.get('location')]).toEqual([201, location])
    // A token without the claim still reaches both, and still names the one it means.
    const everyone = await token()
    expect((await send(app, 'GET', location, { token: everyone })).status).toBe(200)
    expect((await send(app, 'GET', '/v1/outbox', { token: everyone })).status).toBe(400)
    const all = await send(app, 'GET', '/v1/stats', { token: everyone })
    expect((all.body as { databases: { name: string }[] }).databases.map((d) => d.name)).toEqual([
      'shop',
      'other',
    ])
  })

  test('a db claim naming no configured database is refused (403), and one that is not a name is an invalid token (401)', async () => {
    const nowhere = await token({ extra: { db: 'gone' } })
    for (const path of ['/v1/stats', '/v1/outbox?db=shop']) {
      const r = await send(app, 'GET', path, { token: nowhere })
      expect([path, r.status, typeOf(r)]).toEqual([
        path,
        403,
        'urn:outbox-mailer:problem:forbidden',
      ])
    }
    for (const db of [7, ['shop'], '', 'Shop Two']) {
      const r = await send(app, 'GET', '/v1/stats', { token: await token({ extra: { db } }) })
      expect([db, r.status, typeOf(r)]).toEqual([db, 401, 'urn:outbox-mailer:problem:unauthorized'])
    }
  })
})
