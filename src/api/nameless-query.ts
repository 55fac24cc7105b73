// A /v1 query parameter without a name (`?=5`) is a 400, as one of a name the route does not take is: Hono drops it unsaid.
import type { MiddlewareHandler } from 'hono'
import { AppError } from '../errors.ts'

/** The message of a query whose `n`th parameter (from 1) has no name; its value is not quoted. */
export const namelessMessage = (n: number) =>
  `holds a parameter with no name (its parameter ${n}, "=…"): each is name=value, named as the route takes it`

/**
 * Refuses a query holding `=value` or `=` alone, which Hono's query reading skips, so a client's
 * filter whose name its code lost (`?${key}=${value}` with key empty) widened the page unsaid, where
 * every other unknown name is named (strict-query.ts). An empty piece (`?&&limit=5&`) is no
 * parameter: a separator repeated, as URL builders leave it.
 */
export const refuseNamelessQuery: MiddlewareHandler = async (c, next) => {
  const url = c.req.url
  const start = url.indexOf('?')
  if (start >= 0 && url.includes('=', start)) {
    const end = url.indexOf('#', start)
    const pieces = url.slice(start + 1, end < 0 ? undefined : end).split('&')
    let n = 0
    for (const piece of pieces) {
      if (piece === '') continue
      n++
      if (!piece.startsWith('=')) continue
      const message = namelessMessage(n)
      throw new AppError('validation_failed', `(query): ${message}`, {
        errors: [{ path: '(query)', message }],
      })
    }
  }
  return next()
}
