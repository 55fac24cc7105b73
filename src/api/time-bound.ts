// A time filter's bound (createdFrom, sentTo, ...): an ISO-8601 timestamp with a zone, in the forms options.sendAt takes, that Postgres has an instant for, and how one that is not is named.
import { z } from '@hono/zod-openapi'

// The forms options.sendAt takes (mailer.check_options, sql/0044): RFC 3339 (OpenAPI's date-time)
// and ISO 8601's to the minute, a space for T, an offset ±hh or ±hhmm. A filter takes them all, so
// a timestamp enqueued as written can be filtered by as written.
export const TIMESTAMP_WITH_ZONE =
  '^\\d{4}-\\d{2}-\\d{2}[T ]\\d{2}:\\d{2}(:\\d{2}(\\.\\d+)?)?(Z|[+-]\\d{2}(:?\\d{2})?)$'
// Its parts: date, hour, minute, second, fraction, Z or the offset's hours and minutes. Exactly
// TIMESTAMP_WITH_ZONE: an offset's colon comes with its minutes (not "+01:").
const SEND_AT_FORM =
  /^(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(?:(Z)|([+-]\d{2})(?::?(\d{2}))?)$/
const TIME_BOUND =
  'must be an ISO-8601 timestamp with a time zone (Z, ±hh, ±hhmm or ±hh:mm), as options.sendAt takes it, e.g. 2030-01-01T00:00:00Z'
// A time, then a space where an offset's sign goes: a `+` that a URL's query string decoded as a space.
const PLUS_AS_SPACE = /([T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d(?::?\d\d)?)$/
// RFC 3339's calendar (no February 30th) and an offset's minutes, for the day and zone alone.
const RFC_3339 = z.iso.datetime({ offset: true })
const DAY_SECONDS = 86_400

/**
 * Postgres has an instant for the bound (in a form sendAt takes): its day is one the calendar has,
 * and its clock one Postgres reads: minutes to 59, a second 60 (RFC 3339's leap second: the next
 * minute's start) and 24:00 (ISO 8601's end of a day: the next day's midnight), as enqueue's sendAt
 * takes them, the time no later than 24:00:00 (23:59:60.5 is past it: 22008).
 */
function hasInstant(v: string): boolean {
  const m = SEND_AT_FORM.exec(v)
  if (!m) return false
  const [, date, hour, minute, second = '0', fraction = '', utc, offsetHours, offsetMinutes] = m
  const time = Number(hour) * 3600 + Number(minute) * 60 + Number(second) + Number(`0${fraction}`)
  if (Number(minute) > 59 || Number(second) > 60 || time > DAY_SECONDS) return false
  const zone = utc ?? `${offsetHours}:${offsetMinutes ?? '00'}`
  return RFC_3339.safeParse(`${date}T00:00:00${zone}`).success
}

/**
 * A bound (one TimeBound takes) in microseconds since 1970, as Postgres reads it, and whether that is
 * exact: digits past the sixth Postgres rounds, so such a bound is only known to the microsecond
 * below it. Read from its parts, not Date.parse, which takes no offset ±hh ("…T01:00+01": NaN) nor
 * a second 60; 24:00 and a second 60 roll over, as in Postgres. Null for a string Postgres has no
 * instant for (hasInstant), which its own issue names.
 */
export function boundMicroseconds(v: string): { us: bigint; exact: boolean } | null {
  const m = SEND_AT_FORM.exec(v)
  if (!m || !hasInstant(v)) return null
  const [, date, hour, minute, second = '0', fraction = '', utc, offsetHours, offsetMinutes] = m
  const [year, month, day] = date!.split('-').map(Number) as [number, number, number]
  // setUTCFullYear, not Date.UTC: that reads years 0-99 as 1900-1999.
  const at = new Date(0)
  at.setUTCFullYear(year, month - 1, day)
  at.setUTCHours(Number(hour), Number(minute), Number(second))
  const sign = offsetHours?.startsWith('-') ? -1 : 1
  const offsetMs =
    utc === undefined
      ? sign * (Math.abs(Number(offsetHours)) * 60 + Number(offsetMinutes ?? 0)) * 60_000
      : 0
  const digits = fraction.slice(1)
  const us = BigInt(at.getTime() - offsetMs) * 1000n + BigInt(digits.slice(0, 6).padEnd(6, '0'))
  return { us, exact: digits.length <= 6 }
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
  .refine(hasInstant, { error: (issue) => timeBoundProblem(issue.input), abort: true })
  .regex(/^(?!0000-)/, 'must be from year 0001')
  .refine(
    (v) => !OFFSET_PAST_POSTGRES.test(v),
    'its UTC offset must be from -15:59 to +15:59 (Postgres has none beyond)',
  )
  .optional()
  // As options.sendAt's: a pattern, not date-time's format (RFC 3339 alone).
  .openapi({ pattern: TIMESTAMP_WITH_ZONE, example: '2030-01-01T00:00:00Z' })
