// utf8JsonBody's text is what a route's c.req.json() parses, through Hono's body cache (an internal of Hono's): a Hono that stops reading it fails here, by name.
import { afterEach, expect, setDefaultTimeout, spyOn, test } from 'bun:test'
import { Hono } from 'hono'
import type { AppEnv } from '../../src/api/context.ts'
import { utf8JsonBody } from '../../src/api/utf8-body.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const parse = spyOn(JSON, 'parse')
afterEach(() => parse.mockClear())

const app = new Hono<AppEnv>().post('/', utf8JsonBody('{}'), async (c) => {
  const body = await c.req.json()
  // The bytes were read once, by the middleware; the route reads none of them again.
  return c.json({ body, keys: Object.keys(c.req.bodyCache) })
})

const post = (body: string) =>
  app.request('/', { method: 'POST', headers: { 'content-type': 'application/json' }, body })

test('the route parses the text the middleware decoded (JSON.parse of it), not the bytes again', async () => {
  const text = '{"subject":"Grüße","n":1}'
  const res = await post(text)
  expect(res.status).toBe(200)
  expect(await res.json()).toEqual({ body: { subject: 'Grüße', n: 1 }, keys: ['text'] })
  // Hono's fallback for an unexpected cache key makes a Response of the cached text and parses
  // it natively (a second decode of an 8 MB body, which 78e12dd took out): JSON.parse sees nothing.
  expect(parse.mock.calls.filter(([t]) => t === text)).toHaveLength(1)
})

test('a byte order mark is dropped by the one decode, as before', async () => {
  const res = await post('\uFEFF{"n":2}')
  expect(await res.json()).toEqual({ body: { n: 2 }, keys: ['text'] })
})
