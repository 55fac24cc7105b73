// A row's id on the wire: the decimal text of a positive bigint, refused with words that say which rule it broke.
import { z } from '@hono/zod-openapi'

// Postgres bigint's maximum: a longer id would reach the database as an out-of-range error (22003).
const MAX_ID = 9223372036854775807n

// At most 19 digits, no leading zero: also the pattern the OpenAPI document shows.
const ID_DIGITS = /^[1-9][0-9]{0,18}$/

/** True for the decimal text of an id a bigint column can hold (1 .. 2^63-1, no leading zero). */
export const isOutboxId = (s: string) => ID_DIGITS.test(s) && BigInt(s) <= MAX_ID

// "a positive integer id" misnamed 01 (a positive integer, refused for its zero) and a 20-digit id.
const ID_FORM =
  'must be a row id: a whole number from 1, in decimal digits with no sign or leading zero (e.g. 42)'

const TOO_LARGE = `must be at most ${MAX_ID} (no row has a larger id)`

export const OutboxId = z
  .string()
  .regex(ID_DIGITS, {
    // Digits past the 19 a bigint holds are an id too large, not one of another form.
    error: (iss) => (/^[1-9][0-9]*$/.test(String(iss.input)) ? TOO_LARGE : ID_FORM),
    abort: true,
  })
  .refine(isOutboxId, TOO_LARGE)
  .openapi({ example: '42' })

export const IdParam = z.object({
  id: OutboxId.openapi({ param: { name: 'id', in: 'path' } }),
})
