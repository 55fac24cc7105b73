// A transaction whose statements the server cancels after a bound (statement_timeout, set local), read-write or read only.
import { type Kysely, sql, type Transaction } from 'kysely'
import type { Database } from './schema.ts'

interface TimedTransactionOptions {
  /** READ ONLY: Postgres refuses every write in it, ours or a function's (status). */
  readOnly?: boolean
  /** How long a statement waits for a lock before it fails (55P03): below `ms`, a lock in the way is told from a slow read. */
  lockTimeoutMs?: number
}

/**
 * Runs `fn` in one transaction whose statements are cancelled (57014) after `ms`. Both settings
 * are made inside the transaction (the access mode at BEGIN, the timeout with set_config(…, true)),
 * never as startup parameters: they end with it, so a pooled connection keeps neither, and a
 * transaction pooler, which refuses startup parameters, passes them. Errors pass through as pg
 * raised them; each caller names them its own way.
 */
export async function timedTransaction<T>(
  db: Kysely<Database>,
  ms: number,
  fn: (trx: Transaction<Database>) => Promise<T>,
  o: TimedTransactionOptions = {},
): Promise<T> {
  const begin = db.transaction()
  return (o.readOnly ? begin.setAccessMode('read only') : begin).execute(async (trx) => {
    // An integer of at least 1: Postgres rounds a fraction, and 0 would mean no bound at all.
    await sql`select set_config('statement_timeout', ${String(Math.max(1, Math.round(ms)))}, true)`.execute(
      trx,
    )
    if (o.lockTimeoutMs !== undefined) {
      await sql`select set_config('lock_timeout', ${String(Math.max(1, Math.round(o.lockTimeoutMs)))}, true)`.execute(
        trx,
      )
    }
    return fn(trx)
  })
}
