// Whether a server takes writes now: a hot standby, or a primary set read-only, refuses every write (SQLSTATE 25006).
import type { Queryable } from './queryable.ts'

/**
 * Whether a write on this connection would be refused as read-only (its session): on a hot standby
 * transaction_read_only is always on, and outside a transaction it is the session's default
 * (default_transaction_read_only, set on the database, the server, or the role). One read, no
 * privilege needed: readiness's probe statement when it reads no schema (readAppliedAndWrites asks
 * the same beside the schema).
 */
export async function sessionRefusesWrites(q: Queryable): Promise<boolean> {
  const r = await q.query<{ read_only: boolean }>(
    "select current_setting('transaction_read_only')::boolean as read_only",
  )
  return r.rows[0]?.read_only === true
}

/**
 * Whether the server refuses every role's writes: a hot standby (in recovery), or
 * default_transaction_read_only set on the database or the whole server (a demoted primary, a
 * provider's read-only mode). A default of the reading role's own (`status` may run as a role set
 * read-only) says nothing of the worker's, nor does the READ ONLY transaction this runs in.
 */
export async function serverRefusesWrites(q: Queryable): Promise<boolean> {
  const r = await q.query<{ read_only: boolean }>(
    `select pg_is_in_recovery() or exists (
       select from pg_settings
        where name = 'default_transaction_read_only' and setting = 'on'
          and source in ('database', 'configuration file', 'command line', 'environment variable', 'override')
     ) as read_only`,
  )
  return r.rows[0]?.read_only === true
}
