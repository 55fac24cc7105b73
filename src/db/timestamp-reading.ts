// How our connections read timestamps: ±infinity, and a year past a Date's range, as the latest or earliest Date, never a number or an Invalid Date.
import pg from 'pg'

/** The latest instant a Date holds (ms since the epoch, about the year 275760); its negation the earliest. */
const DATE_LIMIT_MS = 8.64e15
const TIMESTAMP_OIDS = [pg.types.builtins.TIMESTAMP, pg.types.builtins.TIMESTAMPTZ]

/**
 * pg reads 'infinity' and '-infinity' as the numbers ±Infinity and a year past 275760 (Postgres
 * keeps up to 294276) as an Invalid Date: either, hand-written or an older binary's, crashed the
 * reader that formatted it (status on a pacing rate at -infinity). As the latest or earliest Date
 * such a value still orders, compares and formats as what it means; timestampText names it.
 */
function readTimestamp(parse: (text: string) => unknown) {
  return (text: string): unknown => {
    const v = parse(text)
    if (typeof v === 'number') return new Date(Math.sign(v) * DATE_LIMIT_MS)
    if (v instanceof Date && Number.isNaN(v.getTime()))
      return new Date(text.startsWith('-') ? -DATE_LIMIT_MS : DATE_LIMIT_MS)
    return v
  }
}

/** Makes `client` read timestamps as readTimestamp says. */
export function readTimestampsAsDates(client: pg.Client): void {
  for (const oid of TIMESTAMP_OIDS) {
    client.setTypeParser(oid, 'text', readTimestamp(pg.types.getTypeParser(oid, 'text')))
  }
}

/** ISO 8601, or Postgres's 'infinity' / '-infinity' for a Date at either limit of its range. */
export function timestampText(d: Date): string {
  if (d.getTime() >= DATE_LIMIT_MS) return 'infinity'
  if (d.getTime() <= -DATE_LIMIT_MS) return '-infinity'
  return d.toISOString()
}

/** The first and last instants RFC 3339's date-time writes (years 0001–9999). */
const RFC3339_FIRST_MS = Date.parse('0001-01-01T00:00:00.000Z')
const RFC3339_LAST_MS = Date.parse('9999-12-31T23:59:59.999Z')

/**
 * ISO 8601 within RFC 3339's years, the API's `date-time`: an instant past them (±infinity, a year
 * before 1 or after 9999, hand-written or an older binary's) as the nearest it writes; 0038 keeps an
 * infinite send_at as 9999's last second alike.
 */
export function rfc3339Text(d: Date): string {
  return new Date(Math.min(Math.max(d.getTime(), RFC3339_FIRST_MS), RFC3339_LAST_MS)).toISOString()
}
