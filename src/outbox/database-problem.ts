// How readiness words a database's failure: whether the server answered, a refused privilege or login, the listener's own connect.
import { systemClock, waitAtMost } from '../clock.ts'
import { describeLocksInTheWay, readLocksInTheWay } from '../db/lock-in-the-way.ts'
import { loginRefusal } from '../db/login-refusal.ts'
import type { Queryable } from '../db/queryable.ts'
import { PERMISSION_DENIED_SQLSTATE } from '../db/sqlstate.ts'
import { unreachableCause } from '../db/unreachable-cause.ts'
import { describeError, isAppError } from '../errors.ts'
import { isUnavailableSqlstate, PERMISSION_ADVICE } from './statement-timeout.ts'

/** The probe's error from a database that answered (see `answered`): what readiness says of it. */
export function answeredProblem(e: unknown): string {
  let problem = e instanceof Error ? describeError(e) : 'schema check failed'
  // A role refused CONNECT (at connect) or a right on the schema: the server answered, and says
  // which object only in its message; what to do is the same.
  if ((e as { code?: unknown }).code === PERMISSION_DENIED_SQLSTATE) {
    problem = `the database refused this service's role a privilege (SQLSTATE ${PERMISSION_DENIED_SQLSTATE}: ${problem}): ${PERMISSION_ADVICE}`
  }
  const login = loginRefusal(e)
  if (login) {
    problem = `the database refused this service's connection (SQLSTATE ${login.sqlstate}: ${login.cause}; ${problem}): ${login.advice}`
  }
  return problem
}

/**
 * The listener's connects fail while the pool's statements work (the probe got through): its own
 * URL is the one to look at. A login or privilege refusal is said as the probe says it of the pool's.
 */
export function listenerProblem(state: string, err: unknown, variable: string | null): string {
  const via = variable ? ` (${variable})` : ''
  const message = describeError(err)
  const login = loginRefusal(err)
  if (login) {
    return `listener cannot connect${via}: the database refused this service's connection (SQLSTATE ${login.sqlstate}: ${login.cause}; ${message}): ${login.advice}`
  }
  if ((err as { code?: unknown } | null)?.code === PERMISSION_DENIED_SQLSTATE) {
    return `listener cannot connect${via}: the database refused this service's role a privilege (SQLSTATE ${PERMISSION_DENIED_SQLSTATE}: ${message}): ${PERMISSION_ADVICE}`
  }
  return `listener is ${state}${via ? ` (${variable}: ${unreachableCause(err)})` : ` (${unreachableCause(err)})`}`
}

/** The database answered: a schema verdict, or an error from the server that is not an outage. */
export function answered(e: unknown): boolean {
  if (isAppError(e)) return true
  const code = (e as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !isUnavailableSqlstate(code)
}

/**
 * The schema check gave up waiting for a lock on mailer.schema_migrations (its lock_timeout): the
 * database answered. Names who holds or queues for the lock, read within `waitMs` (else unnamed).
 */
export async function lockedSchemaProblem(q: Queryable, waitMs: number): Promise<string> {
  const relation = 'mailer.schema_migrations'
  const locks = await waitAtMost(systemClock, readLocksInTheWay(q, relation), waitMs).catch(
    () => [],
  )
  const who =
    locks.length > 0
      ? describeLocksInTheWay(locks)
      : `a lock on ${relation} (its holder not visible, or gone since)`
  return `the database answered, but ${who} blocks the schema check: a LOCK TABLE, VACUUM FULL or ALTER TABLE in a transaction left open; end it (pg_terminate_backend(pid)) or wait for it`
}
