// Query parameters a route declares, one value each, and a 400 naming any other: a misspelt filter must not widen a list.
import { z } from '@hono/zod-openapi'
import { keysRefusedAs } from './unknown-keys.ts'

/** The problem message of a parameter that takes one value given `count`; `why` says what one means. */
export const takesOneValue = (count: number, why?: string) =>
  `takes one value, given ${count}${why ? `: ${why}` : ''}`

/**
 * The parameter refusing more than one value with its own message. Hono's validator hands a repeated
 * parameter over as an array, which the declared schema would refuse as a wrong value ("Invalid
 * option", "expected number, received NaN") although each value may be right.
 */
function oneValue<T extends z.core.$ZodType>(schema: T, why: string | undefined) {
  return z.preprocess((value, ctx) => {
    if (!Array.isArray(value)) return value
    ctx.addIssue({ code: 'custom', message: takesOneValue(value.length, why), input: value })
    return z.NEVER
  }, schema)
}

/**
 * An object of the given parameters, each taking one value (`why` adds what one value means to the
 * 400 of a repeated one) but those in `several`, whose schemas take the array a repeated one
 * arrives as, that refuses every other parameter, each named by its path with the accepted names
 * listed (as the bulk actions' strict filters do), beside any value of a parameter it takes that
 * is wrong. Closed by zod itself, the one reader that sees every name Hono hands over: a check of a
 * loose object's output never saw `__proto__` (zod leaves it out of any output), so `?__proto__=x`
 * was taken unsaid, the page unfiltered.
 */
export function strictQuery<S extends z.ZodRawShape>(
  shape: S,
  why: Partial<Record<keyof S, string>> = {},
  several: readonly (keyof S)[] = [],
) {
  const single = {} as { [K in keyof S]: z.ZodPreprocess<S[K]> }
  for (const name of Object.keys(shape) as (keyof S)[]) {
    single[name] = (
      several.includes(name) ? shape[name] : oneValue(shape[name], why[name])
    ) as z.ZodPreprocess<S[typeof name]>
  }
  return z.strictObject(
    single,
    keysRefusedAs(
      `is not a query parameter of this route (accepted: ${Object.keys(shape).join(', ')})`,
    ),
  )
}
