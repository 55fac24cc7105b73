// A time filter's bound (createdFrom, sentTo, ...): an ISO-8601 timestamp with a zone, in the forms options.sendAt takes, that Postgres has an instant for, and how one that is not is named.
import { z } from '@hono/zod-openapi'

// The forms options.sendAt takes (mailer.check_options, sql/0044): RFC 3339 (OpenAPI's date-time)
// and ISO 8601's to the minute, a space for T, an offset ±hh or ±hhmm. A filter takes them all, so
// a timestamp enqueued as written can be filtered by as written.
export const TIMESTAMP_WITH_ZONE =
  '^\\d{4}-\\d{2}-\\d{2}[T ]\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?(Z|[+-]\\d{2}(:?\\d{2})?)$'
const SEND_AT_FORM =
  /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2}(?:\.\d+)?)?(?:(Z)|([+-]\d{2}):?(\d{2})?)$/
const TIME_BOUND =
  'must be an ISO-8601 timestamp with a time zone (Z, ±hh, ±hhmm or ±hh:mm), as options.sendAt takes it, e.g. 2030-01-01T00:00:00Z'
// A time, then a space where an offset's sign goes: a `+` that a URL's query string decoded as a space.
const PLUS_AS_SPACE = /([T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d(?::?\d\d)?)$/
// RFC 3339's calendar and clock (no February 30th, no 24:00): what Postgres has an instant for.
const RFC_3339 = z.iso.datetime({ offset: true })

/** The bound in RFC 3339, the same instant (seconds and the offset's minutes written out); null when it is no such form. */
function asRfc3339(v: string): string | null {
  const m = SEND_AT_FORM.exec(v)
  if (!m) return null
  const zone = m[4] ?? `${m[5]}:${m[6] ?? '00'}`
  return `${m[1]}T${m[2]}${m[3] ?? ':00'}${zone}`
}

/** What a bound that is no timestamp with a zone must be; a `+` sent unencoded is named, with the fix. */
function timeBoundProblem(input: unknown): string {
  if (typeof input !== 'string' || !PLUS_AS_SPACE.test(input)) return TIME_BOUND
  const fixed = input.replace(PLUS_AS_SPACE, '$1%2B$2')
  return `${TIME_BOUND}; a + in a URL's query string arrives as a space: write it %2B (${fixed})`
}

// An offset of 16 hours or more: zod's datetime takes up to ±23:59, Postgres none past ±15:59 (22009).
const OFFSET_PAST_POSTGRES = /[+-](?:1[6-9]|2\d)(?::?\d\d)?$/

/**
 * A time filter's bound, handed to Postgres as written (to the microsecond). Postgres has no year 0
 * (22008) and no offset past ±15:59 (22009): a bound with either is refused here, named, instead of
 * failing the statement.
 */
export const TimeBound = z
  .string()
  .refine(
    (v) => {
      const rfc3339 = asRfc3339(v)
      return rfc3339 !== null && RFC_3339.safeParse(rfc3339).success
    },
    { error: (issue) => timeBoundProblem(issue.input), abort: true },
  )
  .regex(/^(?!0000-)/, 'must be from year 0001')
  .refine(
    (v) => !OFFSET_PAST_POSTGRES.test(v),
    'its UTC offset must be from -15:59 to +15:59 (Postgres has none beyond)',
  )
  .optional()
  // As options.sendAt's: a pattern, not date-time's format (RFC 3339 alone).
  .openapi({ pattern: TIMESTAMP_WITH_ZONE, example: '2030-01-01T00:00:00Z' })
