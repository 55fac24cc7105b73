// The one rule for "this mailbox is paused now": the SQL the gate's pause read, the send's last check, /v1/stats and /metrics, and status all ask it by.
import { sql } from 'kysely'
import { PACING_RATE_KEY, RATE_IN_FORCE } from './pacing-rate.ts'

/**
 * When the pause holding the mailbox_pacing row `row` (its alias) ends, paced by `rate` (an
 * interval expression: the newest worker's, PACING_RATE_KEY, interval '0' when none was noted);
 * a time not after now(), or null, when none holds it. A throttle past the mailbox's turn
 * (turn_interval 0, pauseMailbox) ends at next_at, however short; one within a turn at
 * throttled_until (sql/0112) while next_at stands at or past it (next_at moved back, a pause lifted
 * by hand, lifts both); and a wait past one interval of `rate` is a pause too: a row an older binary
 * wrote (turn_interval NULL: a turn or a pause, told apart by the rate) or next_at set by hand past
 * a paced mailbox's turn ('infinity', README), its turn spaced from the last one taken as
 * takePacing reads it. A pacing turn to come is no pause; an owed probe (owed-probe.ts) is none
 * either: the pause it follows has ended, and its rows wait for the probe's answer.
 * As SQL text: a statement written out with its $n placeholders (statementText: the last check,
 * start-send.ts) takes it as it is, an sql tag through sql.raw. `row` and `rate` are SQL the caller
 * writes (an alias, an expression), never a value.
 */
export function pauseEnd(row: string, rate: string): string {
  const [turn, next, until] = ['turn_interval', 'next_at', 'throttled_until'].map(
    (c) => `${row}.${c}`,
  )
  return `greatest(
    case when ${turn} = interval '0' then ${next} end,
    case when ${until} <= ${next} then ${until} end,
    case when ${turn} > interval '0' then case when ${next} - ${turn} > now() then ${next} - ${turn} + ${rate} end
         when ${next} > now() + ${rate} then ${next} end)`
}

/**
 * The mailboxes paused now (pauseEnd), as rows (mailbox, next_at, ends: the pause's end, refused:
 * its cause is Graph refusing the mailbox, pause_reason (sql/0172), not a throttle; an older
 * binary's pause, NULL, is a throttle), for a statement to count or join: every row of mailer.mailbox_pacing but the pacing horizons ('queue …',
 * reservePacing) and the rate noted (PACING_RATE_KEY), which are no mailboxes; the rate read once
 * by primary key. The table holds two rows per mailbox used.
 */
export const PAUSED_MAILBOXES_NOW = sql<{
  mailbox: string
  next_at: Date
  ends: Date
  refused: boolean
}>`
  select p.mailbox, p.next_at, e.ends, p.pause_reason is not distinct from 'refused' as refused
    from mailer.mailbox_pacing p
   cross join (select ${sql.raw(RATE_IN_FORCE)} as i) r
   cross join lateral (select ${sql.raw(pauseEnd('p', 'r.i'))} as ends) e
   where p.mailbox not like 'queue %' and p.mailbox <> ${PACING_RATE_KEY} and e.ends > now()`
