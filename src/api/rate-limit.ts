// Per-token-subject token bucket (in memory, per process): 429 with Retry-After when empty.
import { createMiddleware } from 'hono/factory'
import { AppError } from '../errors.ts'
import type { AppEnv } from './context.ts'

interface Bucket {
  tokens: number
  at: number
}

// Above this many subjects, full buckets are dropped: a full bucket is the same as no bucket.
const MAX_TRACKED = 10_000

/** `perMinute` tokens refill evenly over a minute; a burst of `perMinute` is allowed. 0 = off. */
export function rateLimit(perMinute: number, now: () => number = Date.now) {
  const buckets = new Map<string, Bucket>()
  const perMs = perMinute / 60_000
  return createMiddleware<AppEnv>(async (c, next) => {
    if (perMinute <= 0) return next()
    const key = c.get('principal').subject
    const t = now()
    const b = buckets.get(key) ?? { tokens: perMinute, at: t }
    b.tokens = Math.min(perMinute, b.tokens + (t - b.at) * perMs)
    b.at = t
    if (b.tokens < 1) {
      buckets.set(key, b)
      const retryAfterSeconds = Math.max(1, Math.ceil((1 - b.tokens) / perMs / 1000))
      throw new AppError('rate_limited', `more than ${perMinute} requests per minute`, {
        retryAfterSeconds,
      })
    }
    b.tokens -= 1
    buckets.set(key, b)
    if (buckets.size > MAX_TRACKED) {
      for (const [k, v] of buckets)
        if (v.tokens + (t - v.at) * perMs >= perMinute) buckets.delete(k)
    }
    return next()
  })
}
