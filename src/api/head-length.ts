// A HEAD's Content-Length: the length of the GET answer it stands for, which Hono drops with the body.
import { createMiddleware } from 'hono/factory'
import type { AppEnv } from './context.ts'

/**
 * Hono answers a HEAD with the GET's answer made bodiless, and Bun's server then writes
 * `content-length: 0` for it: a client that trusts the header is told the answer is empty. RFC 9110
 * 9.3.2 allows the GET's length or none; the GET's body is at hand here (already made), so its
 * length is set, and a body without a known end (a stream) is left without one.
 */
export const headLength = createMiddleware<AppEnv>(async (c, next) => {
  await next()
  if (c.req.method !== 'HEAD' || !c.res.body || c.res.headers.has('content-length')) return
  const length = (await c.res.clone().arrayBuffer()).byteLength
  c.res.headers.set('content-length', String(length))
})
