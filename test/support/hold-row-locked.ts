// An application's transaction that keeps outbox rows locked until the test ends it: the lock of a user's open UPDATE.
import type pg from 'pg'

export interface RowsHeld {
  /** The holding transaction's session: a statement on it runs inside that transaction. */
  readonly client: pg.PoolClient
  /** Ends the transaction and gives its connection back; once ended, again is nothing. */
  end(how: 'commit' | 'rollback'): Promise<void>
}

/**
 * Begins a transaction on a connection of its own and locks the rows `ids`: by `select … for update`
 * (a claim or an API action in flight), or by an UPDATE of their message (an application changing
 * the row and keeping its transaction open). The caller ends it, in a `finally` at the latest.
 */
export async function holdRowLocked(
  pool: pg.Pool,
  ids: string | readonly string[],
  by: 'for update' | 'update' = 'for update',
): Promise<RowsHeld> {
  const client = await pool.connect()
  let ended = false
  const end = async (how: 'commit' | 'rollback') => {
    if (ended) return
    ended = true
    try {
      await client.query(how)
      client.release()
    } catch (e) {
      // A connection that could not end its transaction is not given back to be reused.
      client.release(e as Error)
      throw e
    }
  }
  try {
    await client.query('begin')
    await client.query(
      by === 'update'
        ? `update mailer.email_outbox set message = message || '{"subject":"Changed"}' where id = any($1::bigint[])`
        : 'select 1 from mailer.email_outbox where id = any($1::bigint[]) for update',
      [typeof ids === 'string' ? [ids] : ids],
    )
  } catch (e) {
    await end('rollback').catch(() => {})
    throw e
  }
  return { client, end }
}
