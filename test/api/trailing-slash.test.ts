// A served path asked with a trailing slash: a 404 naming the path without it, not only "no route".
import { beforeAll, expect, setDefaultTimeout, test } from 'bun:test'
import { useTestDb } from '../support/db.ts'
import { type App, appOnDefault, enqueueSql, send } from './support/harness.ts'
import { token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
let app: App
let tk: string

beforeAll(async () => {
  app = appOnDefault(t).app
  tk = await token()
})

test.each([
  ['GET', '/v1/outbox/', '/v1/outbox'],
  ['POST', '/v1/outbox/', '/v1/outbox'],
  ['GET', '/v1/outbox/{id}/', '/v1/outbox/{id}'],
  ['POST', '/v1/outbox/{id}/cancel/', '/v1/outbox/{id}/cancel'],
  ['POST', '/v1/outbox/{id}/retry//', '/v1/outbox/{id}/retry'],
  ['GET', '/healthz/', '/healthz'],
])('%s %s: a 404 that names %s', async (method, asked, served) => {
  const id = await enqueueSql(t.pool)
  const r = await send(app, method, asked.replace('{id}', id), { token: tk })
  expect([r.status, (r.body as { detail: string }).detail]).toEqual([
    404,
    `no route for ${method} ${asked.replace('{id}', id)}; the path is ${served.replace('{id}', id)}, without the trailing slash`,
  ])
})

test('a path served nowhere, slash or not, is the plain 404', async () => {
  const r = await send(app, 'GET', '/v1/outboxes/', { token: tk })
  expect([r.status, (r.body as { detail: string }).detail]).toEqual([
    404,
    'no route for GET /v1/outboxes/',
  ])
})
