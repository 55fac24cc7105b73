// The pacing rate every worker of a database sends at: the newest worker's MAILBOX_RATE_PER_MINUTE, noted as it starts.
import { type Kysely, type RawBuilder, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

/**
 * The mailer.mailbox_pacing row whose turn_interval is the newest worker's pacing interval (0: no
 * pacing), which takePacing and reservePacing space turns by; no mailbox key can be it (an address
 * does not begin with an unquoted word and a space, as 'queue …').
 */
export const PACING_RATE_KEY = 'pacing rate'

/**
 * The rate in force, as SQL: the interval every worker paces by now (PACING_RATE_KEY's
 * turn_interval, read by primary key), or, when no worker noted one, interval '0' (no pacing).
 * The one spelling of it for the binary's statements (the last check, the claims' pause read, the
 * pacing turns, the pause reads): RATE_IN_FORCE as text (a statement written out with its $n, or
 * through sql.raw), rateInForceOr for an sql tag with another fallback (this worker's own rate).
 * The SQL functions that read it (claim_past_paused) spell it as they were released.
 */
const RATE_NOTED = `(select noted.turn_interval from mailer.mailbox_pacing noted
                      where noted.mailbox = '${PACING_RATE_KEY}')`
export const RATE_IN_FORCE = `coalesce(${RATE_NOTED}, interval '0')`
export const rateInForceOr = (orElse: RawBuilder<unknown>): RawBuilder<unknown> =>
  sql`coalesce(${sql.raw(RATE_NOTED)}, ${orElse})`

/** The rate a worker's start replaced: another interval (ms, 0 no pacing), who noted it and when. */
export interface ReplacedRate {
  intervalMs: number
  /** The noting worker's id; null when an older binary (before 0069) noted it. */
  notedBy: string | null
  notedAt: Date
}

/**
 * A worker starting: notes its interval as the one every worker paces by from now on (a rolling
 * deploy's new rate holds at once, for the old workers too), with its id (`notedBy`, sql/0069), and
 * when turns were reserved under a longer one (a horizon's turn_interval, NULL from an older binary)
 * drops those horizons and makes the rows given back to them (code mailbox_paced, due later) due
 * now: claimed again, each gets a turn at the new rate instead of waiting out its old one (a raised
 * rate: minutes, not moments). Returns how many rows it made due, and the rate it replaced when that
 * was another (a machine of an older release restarted after a deploy changed the rate sets it back:
 * the caller warns). The rows are read only when a horizon was dropped, through
 * email_outbox_claim_idx (pending rows); mailbox_pacing holds two rows per mailbox used.
 */
export async function notePacingRate(
  db: Kysely<Database>,
  p: { intervalMs: number; notedBy?: string },
): Promise<{ due: number; replaced: ReplacedRate | null }> {
  const { rows } = await sql<{
    due: number
    before_ms: number | null
    before_by: string | null
    before_at: Date | null
  }>`
    with before as (
      select turn_interval, case when noted_at = next_at then noted_by end as noted_by, next_at
        from mailer.mailbox_pacing where mailbox = ${PACING_RATE_KEY}
    ), noted as (
      insert into mailer.mailbox_pacing as r (mailbox, next_at, turn_interval, noted_by, noted_at)
      values (${PACING_RATE_KEY}, now(), make_interval(secs => ${p.intervalMs / 1000}), ${p.notedBy ?? null}, now())
      on conflict (mailbox) do update
        set next_at = now(), turn_interval = excluded.turn_interval, noted_by = excluded.noted_by, noted_at = now()
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
    select (select count(*) from due)::int as due, (select count(*) from noted)::int as noted,
           (extract(epoch from b.turn_interval) * 1000)::float8 as before_ms, b.noted_by as before_by,
           b.next_at as before_at
      from (select 1) one left join before b on true`.execute(db)
  const r = rows[0]
  const replaced =
    r && r.before_ms !== null && r.before_at !== null && r.before_ms !== p.intervalMs
      ? { intervalMs: r.before_ms, notedBy: r.before_by, notedAt: r.before_at }
      : null
  return { due: r?.due ?? 0, replaced }
}

/** The rate every worker paces by now; `notedBy` null when an older binary noted it (before 0069). */
export interface PacingInForce {
  ratePerMinute: number
  notedBy: string | null
  notedAt: Date
}

/** The rate every worker paces by now (sql/0069), for status: null when no worker noted one. */
export async function pacingInForce(db: Kysely<Database>): Promise<PacingInForce | null> {
  const { rows } = await sql<{ ms: number; noted_by: string | null; noted_at: Date }>`
    select (extract(epoch from turn_interval) * 1000)::float8 as ms,
           case when noted_at = next_at then noted_by end as noted_by, next_at as noted_at
      from mailer.mailbox_pacing where mailbox = ${PACING_RATE_KEY}`.execute(db)
  const r = rows[0]
  if (!r) return null
  return {
    ratePerMinute: r.ms > 0 ? Math.round(60_000 / r.ms) : 0,
    notedBy: r.noted_by,
    notedAt: r.noted_at,
  }
}
