// How many bodies past BODY_LIMIT_BYTES one process reads at once: one more is a 429 rate_limited with Retry-After.
import { createMiddleware } from 'hono/factory'
import { AppError } from '../errors.ts'
import { BODY_LIMIT_BYTES, capOf } from './body-limits.ts'
import type { AppEnv } from './context.ts'

/**
 * Measured (round 40, serve under bun with its worker, 11.7 MB \u-escaped POST /v1/outbox bodies
 * sent at once, peak RSS): 73 MB idle, 184 MB for 2, 191 for 4, 307 for 8, 529 for 16 (about 28 MB
 * more for each past 4): a 256 MB Fly machine ran out near 6. With two read at once, 8 sent peaked
 * at 196 MB and 16 at 207. Bodies within 4 MiB (every route's limit before) are not counted.
 */
export const LARGE_BODIES_AT_ONCE = 2

let reading = 0

/** How many bodies past BODY_LIMIT_BYTES this process is reading now. */
export const largeBodiesReading = (): number => reading

/** Invariant: `reading` counts the requests past this middleware whose body may pass 4 MiB. */
export const largeBodySlots = createMiddleware<AppEnv>(async (c, next) => {
  // Sent chunked, a body's size is known only once read: it may be as large as its route reads.
  const chunked = c.req.header('transfer-encoding') !== undefined
  const large = chunked
    ? capOf(c.req.method, c.req.path).max > BODY_LIMIT_BYTES
    : Number(c.req.header('content-length') ?? 0) > BODY_LIMIT_BYTES
  if (!large || c.req.method === 'GET' || c.req.method === 'HEAD') return next()
  if (reading >= LARGE_BODIES_AT_ONCE) {
    throw new AppError(
      'rate_limited',
      `${LARGE_BODIES_AT_ONCE} bodies past ${BODY_LIMIT_BYTES} bytes are being read by this process: repeat the request after Retry-After`,
      { retryAfterSeconds: 1 },
    )
  }
  reading += 1
  try {
    return await next()
  } finally {
    reading -= 1
  }
})
