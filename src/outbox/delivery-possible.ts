// Whether a send may have delivered an outbox row, from what the row and its history hold: what the bulk filter's mayHaveBeenDelivered selects.
import { sql } from 'kysely'
import { earlierInterrupted } from './earlier-interrupted.ts'

/** The outbox columns mayHaveBeenDelivered reads: what a subquery carries for deliveryPossibleOf. */
export const DELIVERY_POSSIBLE_COLUMNS = [
  'id',
  'status',
  'send_started_at',
  'last_error_code',
] as const

/**
 * mayHaveBeenDelivered of the outbox row read as `table` (unaliased `mailer.email_outbox`, or a
 * subquery's alias carrying DELIVERY_POSSIBLE_COLUMNS).
 */
export function deliveryPossibleOf(table: string, rowByRow = false) {
  const column = (name: string) => sql.ref(`${table}.${name}`)
  return sql<boolean>`(${column('status')} = 'sent'
  or ${column('send_started_at')} is not null
  or ${earlierInterrupted(column('id'), column('last_error_code'), rowByRow)})`
}

/**
 * Of the outbox row read unaliased (`mailer.email_outbox`): sent; or keeping a send's mark
 * (send_started_at: a send in flight, or an interrupted one no lookup or send has resolved, kept
 * through a failure, a cancel and a retry, settle.ts); or holding in its history an interrupted
 * send held for review, which cleared the mark (earlierInterrupted: a row failed ambiguous_send,
 * or retried since). Never null. The history is probed (email_attempts_pkey (outbox_id, id)) only
 * for a row neither sent nor marked that carries a last_error_code: no statement more per row.
 */
export const mayHaveBeenDelivered = deliveryPossibleOf('mailer.email_outbox')

/**
 * mayHaveBeenDelivered with each row's history probed apart (email_attempts_pkey, about 4 buffers a
 * row), never hashed: for a list page, which stops at its limit and reads a bounded run or span of
 * rows at most (failed-walk.ts, span-page.ts). Left to the planner, a page of 50 failed rows hashed
 * the ambiguous_send entries of the whole history first, a seq scan of it for the 63 rows it read:
 * 2,555 buffers at 139,000 entries, 25,330 (403 ms) at 1,390,000; now 242 (0.4 ms,
 * bench/list-delivered.ts).
 * A bulk count or batch reading thousands of rows keeps mayHaveBeenDelivered, the planner's pick (a
 * batch of 1,000 probed row by row read 18,946 buffers, not 3,966, at 100,000 rows).
 */
export const mayHaveBeenDeliveredRowByRow = deliveryPossibleOf('mailer.email_outbox', true)
