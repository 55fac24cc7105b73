// Whether a row without an interrupted send's mark still has one in its history that nothing resolved, and the words of an unsent ending (expiry, cancel, failure) that must then name it.
import { type RawBuilder, sql } from 'kysely'
import { CANCELLED_BEFORE_SEND } from './cancel-wins.ts'
import { afterWords, EARLIER_SEND_MAY_HAVE_DELIVERED } from './may-have-delivered.ts'

/** The expiry of a pending row none of whose sends may have delivered it. */
export const NOT_SENT_BEFORE_EXPIRY = 'not sent before expiresAt'

/** The expiry of such a row whose history holds an interrupted send left unresolved (earlierInterrupted). */
export const NOT_SENT_AGAIN_BEFORE_EXPIRY = `not sent again before expiresAt${afterWords(EARLIER_SEND_MAY_HAVE_DELIVERED)}`

/**
 * Of the outbox row `id`: its history holds an interrupted send that no lookup resolved although
 * the row keeps no mark of it (send_started_at): one held for review (ambiguous_send, policy hold,
 * the lookup unavailable), which clears the mark, so a retry through the API sends the row unlooked
 * (requeue.ts). Every other unresolved interrupted send keeps the mark (an unverified resend too,
 * send-verdict.ts) until a lookup or a send settles it. A lookup that found nothing leaves no entry:
 * one of a later interrupted send (lookups turned on since the hold) goes unseen, and the words
 * then err towards "may". Read only for a row ending unsent and unmarked, from the history's
 * primary key (outbox_id, id); a row no attempt failed (`lastErrorCode` null: never claimed, or
 * sent) has no such entry and reads none.
 */
export const earlierInterrupted = (
  id: RawBuilder<unknown>,
  lastErrorCode: RawBuilder<unknown>,
  /**
   * Each row's history probed apart, never hashed (offset 0: Postgres then cannot turn the exists
   * into a hashed `in`): for a statement stopping at a page's rows (delivery-possible.ts).
   */
  rowByRow = false,
) =>
  sql<boolean>`(${lastErrorCode} is not null and exists (select 1 from mailer.email_attempts h
     where h.outbox_id = ${id}
       and h.error_code = 'ambiguous_send'${rowByRow ? sql` offset 0` : sql``}))`

/** The last_error of an unmarked row `o` failed expired: NOT_SENT_BEFORE_EXPIRY, or the earlier send named. */
export const notSentBeforeExpiry = sql<string>`case when ${earlierInterrupted(sql`o.id`, sql`o.last_error_code`)}
  then ${sql.lit(NOT_SENT_AGAIN_BEFORE_EXPIRY)} else ${sql.lit(NOT_SENT_BEFORE_EXPIRY)} end`

/** CANCELLED_BEFORE_SEND of such a row (earlierInterrupted). */
export const CANCELLED_BEFORE_SEND_AGAIN = `cancelled before the send started${afterWords(EARLIER_SEND_MAY_HAVE_DELIVERED)}`

/** The last_error of an unmarked row `o` a recorded cancel ended: CANCELLED_BEFORE_SEND, or the earlier send named. */
export const cancelledBeforeSend = sql<string>`case when ${earlierInterrupted(sql`o.id`, sql`o.last_error_code`)}
  then ${sql.lit(CANCELLED_BEFORE_SEND_AGAIN)} else ${CANCELLED_BEFORE_SEND} end`
