// The SQLSTATE codes the service answers differently, each named once (db, outbox, api and status read them here).

/** read_only_sql_transaction: a hot standby, or a primary demoted by a failover. */
export const READ_ONLY_SQLSTATE = '25006'

/** insufficient_privilege: the role was never granted, or was revoked, a privilege the statement needs. */
export const PERMISSION_DENIED_SQLSTATE = '42501'

/** query_canceled: here, a statement that ran out of its statement_timeout. */
export const QUERY_CANCELED_SQLSTATE = '57014'

/** undefined_table, invalid_schema_name: the mailer schema or a table of it is not there. */
const SCHEMA_MISSING_SQLSTATES: ReadonlySet<string> = new Set(['42P01', '3F000'])

/** The schema, or a table of it, is missing (dropped, or a database never migrated). */
export const isSchemaMissingSqlstate = (code: unknown): boolean =>
  typeof code === 'string' && SCHEMA_MISSING_SQLSTATES.has(code)

/** unique_violation: a row another already holds the key of (e.g. a lease key drawn twice). */
export const UNIQUE_VIOLATION_SQLSTATE = '23505'

/** deadlock_detected: Postgres aborted this transaction to break a cycle of lock waits. */
export const DEADLOCK_SQLSTATE = '40P01'

/** lock_not_available: a lock waited for past lock_timeout (or refused by NOWAIT). */
export const LOCK_NOT_AVAILABLE_SQLSTATE = '55P03'

/** A statement refused for a value it wrote: a data exception, a constraint, a size limit (SQLSTATE 22, 23, 54). */
export function isRowRefusal(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^(22|23|54)/.test(code)
}
