// A time filter's bound (createdFrom, sentTo, ...): an ISO-8601 timestamp with a zone that Postgres has an instant for, and how one that is not is named.
import { z } from '@hono/zod-openapi'

// The form RFC 3339 (OpenAPI's date-time) takes: ISO 8601 also writes 00:00Z and +0100, refused here.
const TIME_BOUND =
  'must be an ISO-8601 timestamp to the second with a time zone, Z or ±hh:mm, e.g. 2030-01-01T00:00:00Z'
// A time, then a space where an offset's sign goes: a `+` that a URL's query string decoded as a space.
const PLUS_AS_SPACE = /(T\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d(?::?\d\d)?)$/

/** What a bound that is no timestamp with a zone must be; a `+` sent unencoded is named, with the fix. */
function timeBoundProblem(input: unknown): string {
  if (typeof input !== 'string' || !PLUS_AS_SPACE.test(input)) return TIME_BOUND
  const fixed = input.replace(PLUS_AS_SPACE, '$1%2B$2')
  return `${TIME_BOUND}; a + in a URL's query string arrives as a space: write it %2B (${fixed})`
}

// An offset of 16 hours or more: zod's datetime takes up to ±23:59, Postgres none past ±15:59 (22009).
const OFFSET_PAST_POSTGRES = /[+-](?:1[6-9]|2\d):\d\d$/

/**
 * A time filter's bound, handed to Postgres as written (to the microsecond). Postgres has no year 0
 * (22008) and no offset past ±15:59 (22009): a bound with either is refused here, named, instead of
 * failing the statement.
 */
export const TimeBound = z.iso
  .datetime({ offset: true, error: (issue) => timeBoundProblem(issue.input) })
  .regex(/^(?!0000-)/, 'must be from year 0001')
  .refine(
    (v) => !OFFSET_PAST_POSTGRES.test(v),
    'its UTC offset must be from -15:59 to +15:59 (Postgres has none beyond)',
  )
  .optional()
  // The pattern replaces the format in the generated schema: it is said again.
  .openapi({ format: 'date-time', example: '2030-01-01T00:00:00Z' })
