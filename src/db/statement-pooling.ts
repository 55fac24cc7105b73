// A pooler in statement mode (PgBouncer pool_mode=statement), which refuses every transaction and ends the connection: how it is told, and what to do about it.
import type pg from 'pg'

/**
 * PgBouncer's answer to a statement that leaves a transaction open, seen once the server says so
 * (its ReadyForQuery): FATAL 08P01 with these words, then it hangs up.
 */
const REFUSAL = /transaction blocks not allowed in statement pooling mode/i

export function refusesTransactions(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null
  return e?.code === '08P01' && typeof e.message === 'string' && REFUSAL.test(e.message)
}

/** Why outbox-mailer cannot run there, and what to change. */
export const STATEMENT_POOLING_PROBLEM =
  'this URL is a pooler in statement mode (PgBouncer pool_mode = statement: "transaction blocks not allowed in statement pooling mode"), which ends the connection at every transaction, and outbox-mailer claims, settles and migrates in transactions: set pool_mode = transaction (or session) for this database in PgBouncer, or use a direct URL'

/**
 * Opens a transaction and rolls it back on `session`, a connection of the caller's own: the
 * failure, or null. Failed, the connection may be ended (the refusal) or mid-transaction: the
 * caller discards it.
 */
export async function transactionProbe(session: {
  query(text: string): Promise<unknown>
}): Promise<unknown> {
  try {
    await session.query('begin')
    await session.query('rollback')
    return null
  } catch (e) {
    return e ?? new Error('transaction probe failed')
  }
}

/**
 * Whether `pool`'s connections refuse transactions (statement mode), asked on one of them, and the
 * probe's failure otherwise (null: none): no connection to be had, or an outage, the caller's to report.
 */
export async function probePoolTransactions(
  pool: pg.Pool,
): Promise<{ refuses: boolean; failure: unknown }> {
  let client: pg.PoolClient
  try {
    client = await pool.connect()
  } catch (e) {
    return { refuses: false, failure: e ?? new Error('connect failed') }
  }
  const failure = await transactionProbe(client)
  // Never lent again mid-transaction or ended: a failed probe's connection is discarded.
  client.release(failure !== null)
  return refusesTransactions(failure)
    ? { refuses: true, failure: null }
    : { refuses: false, failure }
}

/**
 * Whether `pool`'s connections refuse transactions (statement mode). False when none could be had
 * or the probe failed otherwise: an outage is other checks' to report.
 */
export async function poolRefusesTransactions(pool: pg.Pool): Promise<boolean> {
  return (await probePoolTransactions(pool)).refuses
}
