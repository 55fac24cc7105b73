// Query parameters a route declares, and a 400 naming any other: a misspelt filter must not widen a list.
import { z } from '@hono/zod-openapi'

/**
 * An object of the given parameters that refuses every other one, each named by its path with the
 * accepted names listed (as the bulk actions' strict filters do). Loose, so the parameters reach
 * the check; the route's typed values are the declared ones.
 */
export function strictQuery<S extends z.ZodRawShape>(shape: S) {
  const accepted = Object.keys(shape).join(', ')
  return z.looseObject(shape).superRefine((query, ctx) => {
    for (const name of Object.keys(query)) {
      if (Object.hasOwn(shape, name)) continue
      ctx.addIssue({
        code: 'custom',
        path: [name],
        message: `is not a query parameter of this route (accepted: ${accepted})`,
      })
    }
  })
}
