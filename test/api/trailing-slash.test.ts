// A served path asked with a trailing slash: a 404 naming the path without it, not only "no route".
import { expect, setDefaultTimeout, test } from 'bun:test'
import { send } from './support/harness.ts'
import { appOnUnreachedDatabase } from './support/unreached-database-app.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

// A path served nowhere is answered by the router, before any statement: no database is reached,
// and the row an id names need not exist.
const s = appOnUnreachedDatabase()

test.each([
  ['GET', '/v1/outbox/', '/v1/outbox'],
  ['POST', '/v1/outbox/', '/v1/outbox'],
  ['GET', '/v1/outbox/{id}/', '/v1/outbox/{id}'],
  ['POST', '/v1/outbox/{id}/cancel/', '/v1/outbox/{id}/cancel'],
  ['POST', '/v1/outbox/{id}/retry//', '/v1/outbox/{id}/retry'],
  ['GET', '/healthz/', '/healthz'],
])('%s %s: a 404 that names %s', async (method, asked, served) => {
  const id = '1'
  const r = await send(s.app, method, asked.replace('{id}', id), { token: s.tk })
  expect([r.status, (r.body as { detail: string }).detail]).toEqual([
    404,
    `no route for ${method} ${asked.replace('{id}', id)}; the path is ${served.replace('{id}', id)}, without the trailing slash`,
  ])
})

test('a path served nowhere, slash or not, is the plain 404', async () => {
  const r = await send(s.app, 'GET', '/v1/outboxes/', { token: s.tk })
  expect([r.status, (r.body as { detail: string }).detail]).toEqual([
    404,
    'no route for GET /v1/outboxes/',
  ])
})
