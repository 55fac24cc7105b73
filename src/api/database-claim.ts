// The optional `db` claim: a token confined to one configured database, as `tenant` confines it to one tenant.
import type { JWTPayload } from 'jose'
import { AppError } from '../errors.ts'
import type { ApiDatabase, Principal } from './context.ts'
import { INVALID_TOKEN } from './token-refusal.ts'

// What MAILER_DATABASES takes as a name (config/database-list.ts): a claim outside it names none.
const DATABASE_NAME = /^[a-z0-9_-]{1,40}$/

/** The `db` claim of a verified token, or null without one; 401 when it is not a database name. */
export function databaseClaim(p: JWTPayload): string | null {
  const db = p.db
  if (db === undefined) return null
  if (typeof db !== 'string' || !DATABASE_NAME.test(db)) {
    throw new AppError(
      'unauthorized',
      'the db claim must be a database name: 1-40 characters of a-z 0-9 _ -',
      { ...INVALID_TOKEN, reason: 'claim_invalid', claim: 'db' },
    )
  }
  return db
}

/**
 * The databases a token reaches: its `db` claim's one, else every one. With a database per customer
 * a token for one must not read, cancel or retry the other's rows, whose tenant ids (`default` in
 * each, say) may be the same; the others are as if not configured, their names never told. A claim
 * naming none configured is 403: the token is valid, and permits nothing here.
 */
export function reachableDatabases<D extends Pick<ApiDatabase, 'name'>>(
  databases: ReadonlyArray<D>,
  principal: Principal,
): ReadonlyArray<D> {
  if (principal.database === null) return databases
  const own = databases.filter((d) => d.name === principal.database)
  if (own.length === 0) {
    throw new AppError('forbidden', "the token's db claim names no database this service serves")
  }
  return own
}
