// The pacing rate every worker of a database sends at: the newest worker's MAILBOX_RATE_PER_MINUTE, noted as it starts.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

/**
 * The mailer.mailbox_pacing row whose turn_interval is the newest worker's pacing interval (0: no
 * pacing), which takePacing and reservePacing space turns by; no mailbox key can be it (an address
 * does not begin with an unquoted word and a space, as 'queue …').
 */
export const PACING_RATE_KEY = 'pacing rate'

/**
 * A worker starting: notes its interval as the one every worker paces by from now on (a rolling
 * deploy's new rate holds at once, for the old workers too), and when turns were reserved under a
 * longer one (a horizon's turn_interval, NULL from an older binary) drops those horizons and makes
 * the rows given back to them (code mailbox_paced, due later) due now: claimed again, each gets a
 * turn at the new rate instead of waiting out its old one (a raised rate: minutes, not moments).
 * Returns how many rows it made due. The rows are read only when a horizon was dropped, through
 * email_outbox_claim_idx (pending rows); mailbox_pacing holds two rows per mailbox used.
 */
export async function notePacingRate(
  db: Kysely<Database>,
  p: { intervalMs: number },
): Promise<number> {
  const { rows } = await sql<{ due: number }>`
    with noted as (
      insert into mailer.mailbox_pacing as r (mailbox, next_at, turn_interval)
      values (${PACING_RATE_KEY}, now(), make_interval(secs => ${p.intervalMs / 1000}))
      on conflict (mailbox) do update set next_at = now(), turn_interval = excluded.turn_interval
      returning 1
    ), stale as (
      delete from mailer.mailbox_pacing
       where mailbox like 'queue %'
         and (turn_interval is null or turn_interval > make_interval(secs => ${p.intervalMs / 1000}))
      returning 1
    ), due as (
      update mailer.email_outbox set send_at = now()
       where status = 'pending' and last_error_code = 'mailbox_paced' and send_at > now()
         and exists (select 1 from stale)
      returning 1
    )
    select (select count(*) from due)::int as due, (select count(*) from noted)::int as noted`.execute(
    db,
  )
  return rows[0]?.due ?? 0
}
