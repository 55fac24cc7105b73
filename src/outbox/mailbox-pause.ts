// Statements behind a mailbox's pause: a throttle's or a refusal's set, and read with the rate in force, in database time.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { type PauseLeftMs, pauseLeftMs } from './endless-pause.ts'
import { GATE_PAUSE_END } from './mailbox-pacing.ts'
import { RATE_IN_FORCE } from './pacing-rate.ts'
import { pauseEnd } from './paused-now.ts'

// The pause an existing row (pauseMailbox's conflict, `m`) holds, paced by the rate in force.
const PAUSE_STANDING_END = sql.raw(pauseEnd('m', RATE_IN_FORCE))

/**
 * With no pacing in force, only a throttle's pause holds a mailbox back: the milliseconds it still
 * lasts (0 when none; a pause with no end: a recheck, pauseLeftMs), and the interval in force
 * (the newest worker's, PACING_RATE_KEY; 0 when none was noted), which, when not 0, makes the wait a turn's to take with takePacing instead. A turn
 * (turn_interval > 0) is spaced by the interval in force from the last one taken, as takePacing
 * reads it: with none in force it is over. A read, so a send from an unpaused mailbox writes nothing.
 * owedProbe: while the mailbox's probe is owed (a MAIL_FROM's, owed-probe.ts), the row named to
 * probe (null: none yet); absent when none is owed. throttledMs: how long a pause still holds the
 * mailbox, however short (pauseEnd, paused-now.ts: the rule /v1/stats, the gauge and status count
 * paused mailboxes by): a throttle that is the wait (turn_interval 0), one within a pacing turn
 * (throttled_until, sql/0112), a wait past one interval (an older binary's row, next_at set by
 * hand); absent when none does. nextAt: next_at as takePacing's `turn` names it; absent with no row.
 * refused: that pause's cause is Graph refusing the mailbox (pause_reason, sql/0172), which the rows
 * it sends back say. Read per mailbox, shared by its sends.
 */
export async function mailboxPausedFor(
  db: Kysely<Database>,
  p: { mailbox: string },
): Promise<{
  waitMs: PauseLeftMs
  intervalMs: number
  owedProbe?: string | null
  throttledMs?: PauseLeftMs
  nextAt?: string
  refused?: true
}> {
  const { rows } = await sql<{
    wait_ms: number | string | null
    interval_ms: number
    probe_owed: boolean | null
    probe_id: string | null
    throttled_ms: number | string | null
    next_at: string | null
    refused: boolean | null
  }>`
    with r as materialized (
      select ${sql.raw(RATE_IN_FORCE)} as i
    )
    select greatest(0, mailer.ms_until(case when m.turn_interval > interval '0' then m.next_at - m.turn_interval + r.i
                                            else m.next_at end)) as wait_ms,
           (extract(epoch from r.i) * 1000)::float8 as interval_ms,
           m.probe_owed, m.probe_id::text as probe_id,
           greatest(0, mailer.ms_until(${GATE_PAUSE_END})) as throttled_ms,
           extract(epoch from m.next_at)::text as next_at,
           m.pause_reason = 'refused' as refused
      from r left join mailer.mailbox_pacing m on m.mailbox = ${p.mailbox}`.execute(db)
  const r = rows[0]
  const throttledMs = pauseLeftMs(r?.throttled_ms ?? 0)
  const read = {
    waitMs: pauseLeftMs(r?.wait_ms ?? 0),
    intervalMs: r?.interval_ms ?? 0,
    ...(throttledMs > 0 && { throttledMs }),
    ...(r?.next_at != null && { nextAt: r.next_at }),
    ...(throttledMs > 0 && r?.refused === true && { refused: true as const }),
  }
  return r?.probe_owed ? { ...read, owedProbe: r.probe_id } : read
}

/**
 * Why a mailbox is paused (mailbox_pacing.pause_reason, sql/0172): a provider throttle (429, 503
 * with Retry-After) or Graph refusing the mailbox itself (MAIL_FROM unknown, the app not let send
 * from it). NULL, an older binary's pause, reads as a throttle.
 */
export type PauseCause = 'throttle' | 'refused'

/**
 * A provider throttle, or Graph refusing the mailbox (`cause`): no worker starts a send from this
 * mailbox for `ms`. Its end is kept apart too (throttled_until, sql/0112): a pause within the
 * mailbox's next turn leaves only that turn in next_at, which a lookup made without a turn
 * (mailboxPausedFor) must not take for no throttle. The cause kept is that of the pause ending
 * last, which holds the mailbox: one noted within a longer pause leaves the longer one's.
 */
export async function pauseMailbox(
  db: Kysely<Database>,
  p: { mailbox: string; ms: number; cause?: PauseCause },
): Promise<void> {
  const ends = sql`now() + make_interval(secs => ${p.ms / 1000})`
  await sql`
    insert into mailer.mailbox_pacing as m
           (mailbox, next_at, turn_interval, throttled_until, pause_reason, pause_reason_ends)
    values (${p.mailbox}, ${ends}, interval '0', ${ends}, ${p.cause ?? 'throttle'}, ${ends})
    on conflict (mailbox) do update
       set next_at = greatest(m.next_at, ${ends}),
           throttled_until = greatest(m.throttled_until, ${ends}),
           -- A pause past the mailbox's next turn ends at next_at, whatever the rate (0: no turn).
           turn_interval = case when m.next_at < ${ends} then interval '0' else m.turn_interval end,
           -- The pause standing, by the one rule every reader counts by (pauseEnd: a throttled_until
           -- a hand-lift left behind next_at holds nothing), keeps its cause while it outlasts this one.
           -- Both written, the cause named (sql/0178: a write naming neither loses it).
           (pause_reason, pause_reason_ends) =
             (select case when s.kept then m.pause_reason else excluded.pause_reason end,
                     case when s.kept then m.pause_reason_ends else excluded.pause_reason_ends end
                from (select ${PAUSE_STANDING_END} > ${ends} as kept) s)`.execute(db)
}
