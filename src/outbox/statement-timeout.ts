// Runs API-driven statements in one transaction under a statement_timeout; maps outages and a missing schema to AppErrors.
import type { Kysely, Transaction } from 'kysely'
import { loginRefusal } from '../db/login-refusal.ts'
import type { Database } from '../db/schema.ts'
import {
  isSchemaMissingSqlstate,
  PERMISSION_DENIED_SQLSTATE,
  QUERY_CANCELED_SQLSTATE,
  READ_ONLY_SQLSTATE,
} from '../db/sqlstate.ts'
import { timedTransaction } from '../db/timed-transaction.ts'
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

// Postgres aborted the transaction to break a deadlock (40P01), because it could not serialize it
// with a concurrent one (40001), or because a row or table lock another transaction held outlasted
// the role's or database's lock_timeout (55P03, which managed services and DBAs often set): nothing
// was written, and the same request succeeds when repeated.
const CONFLICT_SQLSTATE: Record<string, string> = {
  '40P01': 'a deadlock with a concurrent transaction',
  '40001': 'a serialization failure against a concurrent transaction',
  '55P03': "a lock a concurrent transaction held past the database's lock_timeout",
}
// The schema, or a table of it, is not there (isSchemaMissingSqlstate): no request can succeed
// until migrate runs.
// undefined_function is a function of ours gone only when the message names one in mailer (every
// statement and function of ours calls them qualified): "function mailer.enqueue_email(jsonb, jsonb)
// does not exist", whatever the server's language (Japanese puts no blank before the name:
// "関数mailer.enqueue_email(jsonb, jsonb)は存在しません"), so the name is told from another only by
// what precedes it: no letter, digit, _ or dot. Else it is a plain SQL bug (an operator no type
// has, a function misspelt or unqualified), which migrate would not mend.
const UNDEFINED_FUNCTION_SQLSTATE = '42883'
const OUR_FUNCTION_NAMED = /(?<![\w.])mailer\.\w+\(/

const isSchemaMissing = (code: string, message: string) =>
  code === UNDEFINED_FUNCTION_SQLSTATE
    ? OUR_FUNCTION_NAMED.test(message)
    : isSchemaMissingSqlstate(code)
/** What an operator does about it, in serve's start log and readiness (status names its own grants). */
export const PERMISSION_ADVICE = 'grant it CONNECT on the database and its rights on schema mailer'

// A read-only server (READ_ONLY_SQLSTATE) takes no writes (a hot standby, or a primary demoted by a
// failover under way); reads go on, and a write succeeds again once the URL reaches a primary.
/** How soon a write refused by a read-only server may be tried again: a failover takes seconds. */
const READ_ONLY_RETRY_AFTER_SECONDS = 5

/** How soon a request aborted by such a conflict may be repeated: the other transaction has moved on. */
const CONFLICT_RETRY_AFTER_SECONDS = 1

/**
 * How soon a request may be repeated after the database did not answer (unreachable, restarting, out
 * of connections, a statement past its timeout): an outage that mends itself, as a failover does. A
 * refused login, a closed database, a privilege or the schema gone carry none: only an operator mends
 * them, and a Retry-After would invite a client's loop of repeats.
 */
const UNAVAILABLE_RETRY_AFTER_SECONDS = 5

/**
 * Runs `fn` in a transaction whose statements are cancelled after `ms` (timedTransaction). A
 * cancelled statement, a lost connection or a transaction aborted by a concurrent one (each with a
 * Retry-After) becomes AppError('database_unavailable'), and so does a refused login (without); a missing schema, table or function AppError('schema_missing');
 * a privilege refused AppError('database_permission_denied'); a write on a read-only server
 * AppError('database_unavailable') with a Retry-After; every other error passes through.
 */
export async function withStatementTimeout<T>(
  db: Kysely<Database>,
  ms: number,
  fn: (trx: Transaction<Database>) => Promise<T>,
): Promise<T> {
  try {
    return await timedTransaction(db, ms, fn)
  } catch (e) {
    throw toAppError(e, ms) ?? e
  }
}

/**
 * Whether a statement failed because the database could not take it now (unreachable, restarting,
 * read-only in a failover, out of connections, a statement cancelled, a transaction aborted by a
 * concurrent one) rather than because of the statement: the same statement may succeed later.
 */
export function isDatabaseUnavailable(e: unknown): boolean {
  return toAppError(e, 0)?.code === 'database_unavailable'
}

function toAppError(e: unknown, ms: number): AppError | null {
  if (e instanceof AppError || !(e instanceof Error)) return null
  const code = (e as { code?: unknown }).code
  // Neither names the object: the message would carry SQL names into a response body.
  if (typeof code === 'string' && isSchemaMissing(code, e.message)) {
    return new AppError(
      'schema_missing',
      'the database lacks the mailer schema or part of it: run `outbox-mailer migrate`',
      { sqlstate: code },
      { cause: e },
    )
  }
  if (code === PERMISSION_DENIED_SQLSTATE) {
    return new AppError(
      'database_permission_denied',
      "the database refused this service's role a privilege on the mailer schema: grant it again",
      { sqlstate: code },
      { cause: e },
    )
  }
  if (code === READ_ONLY_SQLSTATE) {
    return new AppError(
      'database_unavailable',
      'the database is read-only now (a standby, or a failover under way); nothing was changed, try again',
      { retryAfterSeconds: READ_ONLY_RETRY_AFTER_SECONDS },
      { cause: e },
    )
  }
  const conflict = typeof code === 'string' ? CONFLICT_SQLSTATE[code] : undefined
  if (conflict) {
    return new AppError(
      'database_unavailable',
      `the database aborted the request after ${conflict}; nothing was changed, try again`,
      { retryAfterSeconds: CONFLICT_RETRY_AFTER_SECONDS },
      { cause: e },
    )
  }
  // The server refused the pool's connection: a login (a rotated password, a role or database
  // gone) or a database closed to connections (ALLOW_CONNECTIONS false: 55000). Only an operator
  // mends it, as readiness says; the request is not wrong, nor is it a bug. Neither names the role
  // or the database.
  const login = loginRefusal(e)
  if (login) {
    return new AppError(
      'database_unavailable',
      `the database refused this service's connection (SQLSTATE ${login.sqlstate}: ${login.cause}; an operator must ${login.advice})`,
      { sqlstate: code },
      { cause: e },
    )
  }
  // 57014 is the statement timeout's and pg_cancel_backend's alike. Either way the server rolled
  // the request's one transaction back (a cancel never lands after the commit), so a repeat is
  // safe: the caller is told so, as for a conflict.
  if (code === QUERY_CANCELED_SQLSTATE) {
    return new AppError(
      'database_unavailable',
      `the database cancelled the statement (past its ${ms} ms timeout, or cancelled on the server: a lock held by another session, or a slow database); nothing was changed, try again`,
      { retryAfterSeconds: UNAVAILABLE_RETRY_AFTER_SECONDS },
      { cause: e },
    )
  }
  const unavailable =
    (typeof code === 'string' &&
      (isUnavailableSqlstate(code) || UNAVAILABLE_NODE_CODES.has(code))) ||
    UNAVAILABLE_MESSAGES.test(e.message)
  return unavailable
    ? new AppError(
        'database_unavailable',
        'the database is not reachable',
        { retryAfterSeconds: UNAVAILABLE_RETRY_AFTER_SECONDS },
        { cause: e },
      )
    : null
}
