// The rows a paused mailbox (one a row names itself) has waiting, moved to its pause's end and told why in one statement.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import type { MailboxRefusal } from './send-gate.ts'
import { PACED_CODE, PAUSED_CODE, pausedRowMessage, TOKEN_WAIT_CODE } from './settle-item.ts'
import { writingStorable } from './storable-in-encoding.ts'

/**
 * The codes a move replaces with PAUSED_CODE (a Postgres regular expression): waits no try of the
 * row's own met (a pacing turn given up for the pause, a token wait, an earlier pause's words), as
 * MAIL_FROM's naming replaces them (waiting-rows.ts); a code its own attempt met stays.
 */
const RENAMED_CODES = `^(${PACED_CODE}|${PAUSED_CODE})$|${TOKEN_WAIT_CODE}`
/**
 * As RENAMED_CODES, but an earlier `mailbox_paused` stays: a throttle's move within a refusal's
 * pause, whose words know no Graph code, leaves the words the refusal's move (or give-back) wrote.
 */
const RENAMED_CODES_BUT_PAUSED = `^(${PACED_CODE})$|${TOKEN_WAIT_CODE}`

/**
 * Why the rows of a mailbox they name themselves wait while Graph refuses it (the 403 of an app
 * not let send from it): the refusal, as MAIL_FROM's rows are told of theirs (pauseReason), not a
 * throttle; Graph's code where the writer met it (`r`: the pause's own move), not where only the
 * pause's cause was read (a row the gate gives back: the database keeps 'refused' alone, sql/0172).
 * No address: the row's own from (or its template's) names the mailbox.
 */
export const namedMailboxRefusedReason = (r?: MailboxRefusal): string =>
  `the sender mailbox it names is refused by Graph${r === undefined ? '' : ` (${r.httpStatus === undefined ? '' : `HTTP ${r.httpStatus} `}${r.code})`}: paused, its rows tried again at the pause's end`

/**
 * mailer.defer_paused_rows (sql/0200): the pending rows keyed `mailbox` (their sender, as the gate
 * keys it) due before its pause ends are due at that end, one write each, none claimed or
 * recorded, and say why as a row given back for the pause does (`mailbox_paused`, the refusal or
 * the throttle) unless a code of their own try stands; rows another transaction holds, and rows
 * whose expiresAt comes first, are left as they are. Returns how many moved.
 * A throttle's move names the cause the pause kept: one noted within a longer refusal's pause
 * leaves it the refusal's (pauseMailbox), so its rows are told the refusal (without Graph's code,
 * which the throttle's sender does not know), and those the refusal named keep its words. The
 * cause is read in the move's statement, by the table's primary key.
 */
export async function deferPausedRows(
  db: Kysely<Database>,
  mailbox: string,
  /** Graph refused the mailbox itself: what paused it. Else a throttle. */
  refused?: MailboxRefusal,
): Promise<number> {
  const { rows } = await writingStorable(db, (fit) =>
    refused
      ? sql<{ moved: number }>`
          select mailer.defer_paused_rows(${mailbox}, ${PAUSED_CODE},
                                          ${fit(pausedRowMessage(namedMailboxRefusedReason(refused)))},
                                          ${RENAMED_CODES}) as moved`.execute(db)
      : sql<{ moved: number }>`
          select mailer.defer_paused_rows(${mailbox}, ${PAUSED_CODE},
                   case when k.refused then ${fit(pausedRowMessage(namedMailboxRefusedReason()))}
                        else ${fit(pausedRowMessage(null))} end,
                   case when k.refused then ${RENAMED_CODES_BUT_PAUSED} else ${RENAMED_CODES} end) as moved
            from (select exists (select from mailer.mailbox_pacing p
                                  where p.mailbox = ${mailbox} and p.pause_reason = 'refused') as refused) k`.execute(
          db,
        ),
  )
  return rows[0]?.moved ?? 0
}
