// A row lock another session holds while a bulk call's batch waits on it: the races the bulk loops' leftSending tests stage.
import { expect } from 'bun:test'
import type pg from 'pg'

/**
 * A session in a transaction that ran `statement` on row `id` (by default: took its lock, as a
 * worker's claim or a trigger's update holds it), and its backend pid. `end` commits and lets the
 * session go, once however often it is called.
 */
export async function holding(
  pool: pg.Pool,
  id: string,
  statement = 'select 1 from mailer.email_outbox where id = $1 for update',
) {
  const holder = await pool.connect()
  await holder.query('begin')
  await holder.query(statement, [id])
  const { rows } = await holder.query('select pg_backend_pid() as pid')
  let ended: Promise<void> | null = null
  return {
    pid: rows[0].pid as number,
    end: () => {
      ended ??= holder.query('commit').then(
        () => holder.release(),
        (e) => {
          holder.release(e)
          throw e
        },
      )
      return ended
    },
  }
}

/**
 * Polls (at most 5 s) until a statement whose text holds `cte` (a bulk batch's update: its CTE's
 * name) waits on a lock the transaction of backend `holderPid` holds.
 */
export async function batchWaitsOn(pool: pg.Pool, cte: string, holderPid: number) {
  let waiting = false
  for (let i = 0; i < 500 && !waiting; i++) {
    const { rows } = await pool.query(
      `select count(*)::int as n from pg_stat_activity
        where wait_event_type = 'Lock' and query like '%' || $2 || '%'
          and $1::int = any(pg_blocking_pids(pid))`,
      [holderPid, cte],
    )
    waiting = rows[0].n > 0
    if (!waiting) await Bun.sleep(10)
  }
  expect(waiting).toBe(true)
}
