// The Allow of a 405 is what the app's router serves at the path, whatever route patterns it holds.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { Hono } from 'hono'
import { servedMethods } from '../../src/api/served-methods.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

function app() {
  const a = new Hono()
  a.use('*', async (_c, next) => next())
  a.get('/v1/outbox', (c) => c.text('list'))
  a.post('/v1/outbox', (c) => c.text('enqueue'))
  a.get('/v1/outbox/:id', (c) => c.text('row'))
  a.post('/v1/outbox/cancel', (c) => c.text('bulk'))
  // Patterns beyond one plain parameter per segment: a constrained one, an optional one, a wildcard.
  a.post('/numbers/:n{[0-9]+}', (c) => c.text('n'))
  a.get('/maybe/:id?', (c) => c.text('maybe'))
  a.get('/files/*', (c) => c.text('file'))
  a.delete('/files/:name', (c) => c.text('gone'))
  return a
}

test('Allow lists every method a route serves at the path, HEAD with GET, in a fixed order', () => {
  const a = app()
  const allow = servedMethods(a)
  const cases: [string, string[]][] = [
    ['/v1/outbox', ['GET', 'HEAD', 'POST']],
    ['/v1/outbox/1', ['GET', 'HEAD']],
    // Also /v1/outbox/{id} of the id "cancel".
    ['/v1/outbox/cancel', ['GET', 'HEAD', 'POST']],
    ['/v1/outbox/', []],
    ['/nothing', []],
    ['/numbers/12', ['POST']],
    ['/numbers/twelve', []],
    ['/maybe', ['GET', 'HEAD']],
    ['/maybe/1', ['GET', 'HEAD']],
    ['/files/a/b', ['GET', 'HEAD']],
    ['/files/a', ['GET', 'HEAD', 'DELETE']],
  ]
  expect(cases.map(([path]) => [path, allow(path)])).toEqual(cases)
})

// The app's 404 handler is made before its routes are mounted (Hono's router takes none after it
// first matches a request).
test('a route mounted after Allow is made counts', () => {
  const a = new Hono()
  const allow = servedMethods(a)
  a.put('/b', (c) => c.text('b'))
  expect(allow('/b')).toEqual(['PUT'])
})
