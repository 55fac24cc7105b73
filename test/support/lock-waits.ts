// A bounded poll until sessions of a test's database wait for a lock: the sign that a statement under test met the lock the test holds.
import type pg from 'pg'
import { pollUntil } from './events.ts'

/**
 * Returns once `sessions` (default 1) sessions of `pool`'s database wait for a lock, or `over()`
 * says the wait is moot (the statement finished without waiting); throws after 20 s.
 */
export async function untilLockWaits(
  pool: pg.Pool,
  o: { sessions?: number; over?: () => boolean } = {},
): Promise<void> {
  const sessions = o.sessions ?? 1
  await pollUntil(
    async () => {
      if (o.over?.()) return true
      const { rows } = await pool.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity
          where datname = current_database() and wait_event_type = 'Lock'`,
      )
      return rows[0]!.n >= sessions ? true : undefined
    },
    20_000,
    10,
  )
}
