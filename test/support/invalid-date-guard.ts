// Records every query a pg Client is handed with an invalid Date among its values: pg@8 warns once and sends text Postgres cannot read, pg@9 throws.
import pg from 'pg'

declare global {
  var __invalidDateQueries: string[] | undefined
}

/** A value pg would serialize from an invalid Date: one itself, or one in an array (pg's arrayString). */
const invalidDate = (v: unknown): boolean =>
  v instanceof Date ? Number.isNaN(v.getTime()) : Array.isArray(v) && v.some(invalidDate)

/**
 * pg@8's prepareValue turns an invalid Date into `0NaN-NaN-NaNTNaN:…`, with a DeprecationWarning
 * (PG_INVALID_DATE) once per process, so every later one goes unsaid; pg@9 throws instead
 * (brianc/node-postgres#3318). This wrapper catches each, with the caller's stack: our statements
 * bind times as text or epoch numbers, so one would be a regression. A Date inside an object is
 * JSON (an invalid one null), not caught. Installed once per process however many files import it.
 */
export function guardInvalidDates(): void {
  if (globalThis.__invalidDateQueries) return
  const found: string[] = []
  globalThis.__invalidDateQueries = found
  const query = pg.Client.prototype.query as (...args: unknown[]) => unknown
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const [first, second] = args
    const config =
      typeof first === 'object' && first !== null
        ? (first as { text?: unknown; values?: unknown })
        : null
    const values = Array.isArray(second) ? second : config?.values
    if (Array.isArray(values) && values.some(invalidDate)) {
      const text = typeof first === 'string' ? first : config?.text
      found.push(
        `invalid Date among the values of: ${String(text).slice(0, 120)}\n${new Error('invalid Date').stack}`,
      )
    }
    return query.apply(this, args)
  } as typeof pg.Client.prototype.query
}

/** The queries recorded since the last call, removed. */
export function takeInvalidDateQueries(): string[] {
  const found = globalThis.__invalidDateQueries ?? []
  return found.splice(0, found.length)
}
