// Mailbox pauses: how many sender mailboxes a provider throttle holds back now, and for how long (never which).
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { isEndlessPause } from './endless-pause.ts'

export interface MailboxPauses {
  mailboxes: number
  /**
   * Seconds until the longest pause ends, finite; null when none, or (mailboxes > 0) when one has
   * no end (next_at 'infinity', by hand).
   */
  longestSeconds: number | null
}

/**
 * A mailbox's next send time (mailer.mailbox_pacing) lies at most one pacing interval ahead while it
 * is only paced (takePacing): this worker's, or the one its turn was taken under (turn_interval,
 * another worker's rate); a throttle (pauseMailbox) sets it further. Rows keyed 'queue …' are
 * pacing horizons, not mailboxes (reservePacing), and 'pacing rate' lies in the past. The table
 * holds two rows per mailbox used.
 */
export async function mailboxPauses(
  db: Kysely<Database>,
  p: { pacingIntervalMs: number },
): Promise<MailboxPauses> {
  const { rows } = await sql<{ mailboxes: number; longest: number | string | null }>`
    select count(*)::int as mailboxes,
           mailer.ms_until(max(next_at)) / 1000 as longest
      from mailer.mailbox_pacing
     where mailbox not like 'queue %'
       and next_at > now() + greatest(make_interval(secs => ${p.pacingIntervalMs / 1000}::float8),
                                      coalesce(turn_interval, interval '0'))`.execute(db)
  const r = rows[0]
  const longest = r?.longest ?? null
  return {
    mailboxes: r?.mailboxes ?? 0,
    longestSeconds: longest === null || isEndlessPause(longest) ? null : Number(longest),
  }
}
