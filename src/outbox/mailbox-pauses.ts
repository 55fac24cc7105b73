// Mailbox pauses: how many sender mailboxes a provider throttle or Graph's refusal holds back now, by cause, for how long (never which), and how long rows have waited with none sent.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { isEndlessPause } from './endless-pause.ts'
import { NONE_SENT_FOR_SECONDS } from './none-sent-for.ts'
import { PAUSED_MAILBOXES_NOW } from './paused-now.ts'

export interface MailboxPauses {
  mailboxes: number
  /** Of them, those paused because Graph refuses the mailbox (sql/0172); the others a throttle's. */
  refused: number
  /**
   * Seconds until the longest pause ends, finite; null when none, or (mailboxes > 0) when one has
   * no end (next_at 'infinity', by hand).
   */
  longestSeconds: number | null
  /**
   * Seconds rows have waited with no row sent (none-sent-for.ts): a pause that goes with a long one
   * is an outage's (every send turned away), not a throttle's (rows go between its answers); null
   * when not known.
   */
  noneSentForSeconds: number | null
}

/**
 * The mailboxes paused now, by the rule every reader of a pause shares (PAUSED_MAILBOXES_NOW,
 * paused-now.ts: the gate's, /v1/stats' and the outbox_mailboxes_paused gauge's), under the rate
 * every worker paces by (the newest worker's), not the reader's own; the longest by its end (a
 * throttle within a pacing turn: throttled_until, not the turn).
 */
export async function mailboxPauses(db: Kysely<Database>): Promise<MailboxPauses> {
  const { rows } = await sql<{
    mailboxes: number
    refused: number
    longest: number | string | null
    quiet: number | null
  }>`
    select count(*)::int as mailboxes, (count(*) filter (where p.refused))::int as refused,
           mailer.ms_until(max(p.ends)) / 1000 as longest,
           -- In this statement: status reads what a pause stalls with it, no statement more.
           ${NONE_SENT_FOR_SECONDS} as quiet
      from (${PAUSED_MAILBOXES_NOW}) p`.execute(db)
  const r = rows[0]
  const longest = r?.longest ?? null
  return {
    mailboxes: r?.mailboxes ?? 0,
    refused: r?.refused ?? 0,
    longestSeconds: longest === null || isEndlessPause(longest) ? null : Number(longest),
    noneSentForSeconds: r?.quiet == null ? null : Math.max(0, Number(r.quiet)),
  }
}
