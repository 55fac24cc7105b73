// Runs API-driven statements in one transaction under a statement_timeout; maps outages to AppErrors.
import { type Kysely, sql, type Transaction } from 'kysely'
import type { Database } from '../db/schema.ts'
import { AppError } from '../errors.ts'

// SQLSTATE classes / codes that mean "the database is not answering", not "the request is wrong".
const UNAVAILABLE_SQLSTATE = /^(08|53|57P0[1-4])/
export const isUnavailableSqlstate = (code: string): boolean => UNAVAILABLE_SQLSTATE.test(code)
const UNAVAILABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
])
const UNAVAILABLE_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i

// Postgres aborted the transaction to break a deadlock (40P01) or because it could not serialize it
// with a concurrent one (40001): nothing was written, and the same request succeeds when repeated.
const CONFLICT_SQLSTATE: Record<string, string> = {
  '40P01': 'a deadlock with a concurrent transaction',
  '40001': 'a serialization failure against a concurrent transaction',
}
/** How soon a request aborted by such a conflict may be repeated: the other transaction has moved on. */
const CONFLICT_RETRY_AFTER_SECONDS = 1

/**
 * Runs `fn` in a transaction whose statements are cancelled after `ms` (set local: it ends with the
 * transaction, so pooled connections never keep it). A cancelled statement, a lost connection or a
 * transaction aborted by a concurrent one (with a Retry-After) becomes
 * AppError('database_unavailable'); every other error passes through unchanged.
 */
export async function withStatementTimeout<T>(
  db: Kysely<Database>,
  ms: number,
  fn: (trx: Transaction<Database>) => Promise<T>,
): Promise<T> {
  try {
    return await db.transaction().execute(async (trx) => {
      await sql`select set_config('statement_timeout', ${String(Math.max(1, Math.round(ms)))}, true)`.execute(
        trx,
      )
      return fn(trx)
    })
  } catch (e) {
    throw toUnavailable(e, ms) ?? e
  }
}

function toUnavailable(e: unknown, ms: number): AppError | null {
  if (e instanceof AppError || !(e instanceof Error)) return null
  const code = (e as { code?: unknown }).code
  const conflict = typeof code === 'string' ? CONFLICT_SQLSTATE[code] : undefined
  if (conflict) {
    return new AppError(
      'database_unavailable',
      `the database aborted the request after ${conflict}; nothing was changed, try again`,
      { retryAfterSeconds: CONFLICT_RETRY_AFTER_SECONDS },
      { cause: e },
    )
  }
  if (code === '57014') {
    return new AppError(
      'database_unavailable',
      `the query took longer than ${ms} ms`,
      {},
      { cause: e },
    )
  }
  const unavailable =
    (typeof code === 'string' &&
      (isUnavailableSqlstate(code) || UNAVAILABLE_NODE_CODES.has(code))) ||
    UNAVAILABLE_MESSAGES.test(e.message)
  return unavailable
    ? new AppError('database_unavailable', 'the database is not reachable', {}, { cause: e })
    : null
}
