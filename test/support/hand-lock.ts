// A hand session holding an exclusive table lock in a transaction left open, as an operator's psql would: the holder the lock tests expect the product to name.
import pg from 'pg'

export interface HandLock {
  /** The holder's backend pid. */
  pid: number
  /** How the product's messages name this holder: `a lock on <table> held by pid <pid> (hand-session`. */
  named: string
  /** Rolls the transaction back and closes the session. */
  release(): Promise<void>
}

/**
 * `table` is a test's literal, schema-qualified (`mailer.schema_migrations`); `mode` a LOCK TABLE
 * mode (`share`: what a CREATE INDEX without CONCURRENTLY holds).
 */
export async function holdHandLock(
  url: string,
  table: string,
  mode = 'access exclusive',
): Promise<HandLock> {
  const locker = new pg.Client({ connectionString: url, application_name: 'hand-session' })
  await locker.connect()
  try {
    const pid = (await locker.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid
    await locker.query('begin')
    await locker.query(`lock table ${table} in ${mode} mode`)
    return {
      pid,
      named: `a lock on ${table} held by pid ${pid} (hand-session`,
      release: async () => {
        await locker.query('rollback').catch(() => {})
        await locker.end()
      },
    }
  } catch (e) {
    await locker.end().catch(() => {})
    throw e
  }
}
