// Fills the outbox with rows in given states, as a deployment's history leaves them: committed, flushed, vacuumed.
import type pg from 'pg'
import { vacuumAllVisible } from './all-visible-vacuum.ts'

const MESSAGE = `'{"to":[{"address":"a@example.com"}],"subject":"s","text":"t"}'::jsonb`

/**
 * Inserts one outbox row per row of `rows` (a query of `tenant`, `status`, `correlation_id` and any
 * columns `orderBy` names, as `s`), each with the columns its status requires, in `orderBy` order.
 * Committed with its WAL flushed (the test cluster commits asynchronously otherwise), so that the
 * vacuum after it can mark the pages all-visible, as autovacuum finds a deployment's finished rows,
 * and index-only scans need not visit them.
 */
export async function insertRowsInStates(pool: pg.Pool, rows: string, orderBy: string) {
  await pool.query(
    `begin;
     set local synchronous_commit = on;
     insert into mailer.email_outbox (tenant, message, status, correlation_id, sent_at, attempts,
                                      lease_token, lease_expires_at, cancel_requested_at)
     select s.tenant, ${MESSAGE}, s.status, s.correlation_id,
            case when s.status = 'sent' then now() end, 1,
            case when s.status = 'sending' then gen_random_uuid() end,
            case when s.status = 'sending' then now() + interval '1 minute' end,
            case when s.status = 'cancelled' then now() end
       from (${rows}) s
      order by ${orderBy};
     commit`,
  )
  await vacuumAllVisible(pool)
}

/** Runs `update` (one statement) committed with its WAL flushed, as insertRowsInStates commits. */
export async function updateFlushed(pool: pg.Pool, update: string) {
  await pool.query(`begin; set local synchronous_commit = on; ${update}; commit`)
}
