// How many bodies past BODY_LIMIT_BYTES one process reads at once: one more is a 429 large_bodies_busy with Retry-After.
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

/** The slots of one process (createApp's deps.largeBodySlots; one per app when not given). */
export interface LargeBodySlots {
  /** Takes a slot if one is free. */
  take(): boolean
  release(): void
  /** How many bodies past BODY_LIMIT_BYTES are being read now. */
  readonly reading: number
}

/** Invariant: `reading` counts the slots taken and not released, never more than `atOnce`. */
export function largeBodySlots(atOnce = LARGE_BODIES_AT_ONCE): LargeBodySlots {
  let reading = 0
  return {
    take() {
      if (reading >= atOnce) return false
      reading += 1
      return true
    },
    release() {
      reading -= 1
    },
    get reading() {
      return reading
    },
  }
}

/**
 * A request whose body may pass BODY_LIMIT_BYTES holds a slot while it is handled. Sent chunked, a
 * body's size is known only once read: with a slot free it takes one (it may be as large as its
 * route reads); with none, at most BODY_LIMIT_BYTES of it are read (as any small body is, which no
 * slot bounds): one that ends within them is handled from those bytes, one that does not is refused.
 */
export function admitLargeBodies(slots: LargeBodySlots, atOnce = LARGE_BODIES_AT_ONCE) {
  const busy = () =>
    new AppError(
      'large_bodies_busy',
      `${atOnce} bodies past ${BODY_LIMIT_BYTES} bytes are being read by this process: repeat the request after Retry-After`,
      { retryAfterSeconds: 1 },
    )
  return createMiddleware<AppEnv>(async (c, next) => {
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return next()
    const chunked = c.req.header('transfer-encoding') !== undefined
    const large = chunked
      ? capOf(c.req.method, c.req.path).max > BODY_LIMIT_BYTES
      : Number(c.req.header('content-length') ?? 0) > BODY_LIMIT_BYTES
    if (!large) return next()
    if (!slots.take()) {
      if (!chunked) throw busy()
      const body = await bodyWithin(c.req.raw, BODY_LIMIT_BYTES)
      if (body === null) throw busy()
      c.req.raw = new Request(c.req.raw, { body })
      return next()
    }
    try {
      return await next()
    } finally {
      slots.release()
    }
  })
}

/** The body's bytes when it ends within `max`; null (the rest left unread) when it does not. */
async function bodyWithin(req: Request, max: number): Promise<Uint8Array | null> {
  if (!req.body) return new Uint8Array()
  const reader = req.body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > max) {
      await reader.cancel()
      return null
    }
    chunks.push(value)
  }
  const out = new Uint8Array(size)
  let at = 0
  for (const chunk of chunks) {
    out.set(chunk, at)
    at += chunk.byteLength
  }
  return out
}
