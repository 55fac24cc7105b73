// The largest body each /v1 route reads, and the 413 that names that limit and the body's size.

import { bodyLimit } from 'hono/body-limit'
import { createMiddleware } from 'hono/factory'
import { AppError } from '../errors.ts'
import { MAX_REQUEST_BYTES } from '../transport/graph-message.ts'
import type { AppEnv } from './context.ts'

/** Bulk actions and single-row actions: a filter or nothing, far below this. */
export const BODY_LIMIT_BYTES = 4 * 1024 * 1024

/**
 * POST /v1/outbox: the message's own limit is Graph's 4 MB request as normalize_message counts it
 * (its text as UTF-8). A JSON encoder writing each non-ASCII character \uXXXX (Python's json.dumps,
 * PHP's json_encode, Jackson's ESCAPE_NON_ASCII by default or on option) takes at most three times
 * its UTF-8 bytes (2 -> 6, 3 -> 6, 4 -> 12), and Go's escaping of < > & less: three times that
 * limit, plus 1 MiB for the envelope, options and indentation, reads any message Graph takes.
 */
export const ENQUEUE_BODY_LIMIT_BYTES = 3 * MAX_REQUEST_BYTES + 1024 * 1024

const WHY_ENQUEUE = `three times Graph's ${MAX_REQUEST_BYTES}-byte sendMail request, so that a message it takes fits with its non-ASCII text \\u-escaped; the message itself is held to ${MAX_REQUEST_BYTES} bytes as that request counts it`

/** The largest body a route reads, and why. */
export function capOf(method: string, path: string): { max: number; why: string } {
  if (method === 'POST' && path === '/v1/outbox') {
    return { max: ENQUEUE_BODY_LIMIT_BYTES, why: WHY_ENQUEUE }
  }
  return { max: BODY_LIMIT_BYTES, why: 'no request of this route needs more' }
}

/** Refuses a body past its route's limit before anything reads it (413 payload_too_large). */
export const routeBodyLimit = createMiddleware<AppEnv>((c, next) => {
  const { max, why } = capOf(c.req.method, c.req.path)
  return bodyLimit({
    maxSize: max,
    onError: (c) => {
      // Announced: its size. Chunked: only that it passed the limit (not read past it).
      const announced = c.req.header('content-length')
      const size =
        announced && !c.req.header('transfer-encoding')
          ? `the body is ${announced} bytes`
          : `the body passes ${max} bytes`
      throw new AppError(
        'payload_too_large',
        `${size}; ${c.req.method} ${c.req.path} reads at most ${max} bytes (${why})`,
      )
    },
  })(c, next)
})
