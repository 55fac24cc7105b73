// Bulk cancel: the rows a filter matches cancelled a batch at a time, lowest ids first, or a loop of such batches bounded by its span.
import type { ExpressionBuilder, Kysely } from 'kysely'
import type { Database } from '../db/schema.ts'
import { type BulkLoopSpan, inSpan, loopStep } from './bulk-loop-span.ts'
import {
  type CancelOutcome,
  cancelSet,
  historyOfCancelled,
  notStarted,
  outcomeOf,
  pendingCancelRecorded,
  wakeForLookup,
} from './cancel.ts'
import { countMatching, lowestMatching } from './candidate-ids.ts'
import { sendingPassed } from './left-sending.ts'
import { withLockedInIdOrder } from './locked-in-id-order.ts'
import { matchOutbox, type OutboxFilter } from './outbox-filter.ts'
import { wakeForCancelledProbeRow } from './probe-due-hint.ts'

export interface BulkOptions {
  /** At most this many rows per call, lowest ids first; repeat while `more` is true. */
  limit: number
}

interface BulkCancelResult {
  items: { id: string; outcome: CancelOutcome }[]
  more: boolean
  /** Of `items`: how many were cancelled now, how many had their cancel recorded for their worker. */
  cancelled: number
  cancelRequested: number
  /** The highest id the batch read (acted on or left as it stopped matching), null for none. */
  last: string | null
}

// A row whose cancel is already requested (sending, or pending with an interrupted send's mark) no
// longer matches, so repeated batches finish; one whose send has started is left alone (see
// notStarted). The pending ones are the few email_outbox_pending_cancel_requested_idx lists
// (sql/0155): a pending candidate is judged from the claim index, never its heap page (only those
// few rows' pages are read, for the mark). One without the mark (an older binary's) is cancelled
// at once, as pendingCancelRecorded lets a single cancel do.
export const cancellable = (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) =>
  eb.and([
    notStarted(eb),
    eb.or([eb('status', '=', 'pending'), eb('cancel_requested_at', 'is', null)]),
    eb(
      'id',
      'not in',
      eb
        .selectFrom('mailer.email_outbox as r')
        .select('r.id')
        .where((r) => pendingCancelRecorded(r, 'r')),
    ),
  ])

/** How many rows a bulk cancel with this filter would touch now (within `span`: the rest of a loop). */
export async function countCancellable(
  db: Kysely<Database>,
  filter: OutboxFilter,
  scopeTenant: string | null,
  span: BulkLoopSpan | null = null,
): Promise<number> {
  // mayHaveBeenDelivered apart: checked on the rows the rest matches, their history read at once.
  const { mayHaveBeenDelivered: delivered, ...cheap } = filter
  return countMatching(
    db,
    (eb) => eb.and([matchOutbox(eb, cheap, scopeTenant), cancellable(eb), inSpan(span)(eb)]),
    delivered,
  )
}

/**
 * Cancels the next batch (lowest ids first; a loop's within its span). Its rows are locked first,
 * in id order (withLockedInIdOrder, which checks the filter again on each row's latest version),
 * and the update's case in the SET reads its status too: a row a worker claimed meanwhile gets its
 * cancel requested, one whose send started or that settled meanwhile is left alone. `more` counts
 * the candidates, so a row skipped that way never ends a bulk cancel early.
 */
export async function cancelMatching(
  db: Kysely<Database>,
  filter: OutboxFilter,
  scopeTenant: string | null,
  o: BulkOptions & { span?: BulkLoopSpan | null },
): Promise<BulkCancelResult> {
  const span = o.span ?? null
  const matching = (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) =>
    eb.and([matchOutbox(eb, filter, scopeTenant), cancellable(eb), inSpan(span)(eb)])
  const ids = await lowestMatching(db, ['pending', 'sending'], matching, o.limit)
  if (ids.length === 0) {
    return { items: [], more: false, cancelled: 0, cancelRequested: 0, last: null }
  }
  const rows = await withLockedInIdOrder(db, ids, matching)
    .with('cancelled_now', (qb) =>
      qb
        .updateTable('mailer.email_outbox')
        .set(cancelSet)
        .where('id', 'in', qb.selectFrom('locked').select('id'))
        .returning([
          'id',
          'status',
          'attempts',
          'last_error_code',
          'send_started_at',
          'send_at',
          'sender_key',
        ]),
    )
    .with('history', () => historyOfCancelled(db))
    .selectFrom('cancelled_now')
    .select([
      'id',
      'status',
      wakeForCancelledProbeRow('cancelled_now').as('woke'),
      wakeForLookup('cancelled_now').as('woke_lookup'),
    ])
    .execute()
  const items = rows
    .map((r) => ({ id: String(r.id), outcome: outcomeOf(r.status) }))
    .sort((a, b) => Number(BigInt(a.id) - BigInt(b.id)))
  const cancelled = items.filter((i) => i.outcome === 'cancelled').length
  return {
    items,
    more: ids.length === o.limit,
    cancelled,
    cancelRequested: items.length - cancelled,
    last: ids[ids.length - 1]!,
  }
}

const started = (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) =>
  eb('send_started_at', 'is not', null)

/**
 * One call of a cancel loop (loopStep): cancelMatching within `span` (null: the loop's first call),
 * the span its next call takes, null once `more` is false, and the rows it passed whose send had
 * started (leftSending). Bounded so, a loop over rows an application keeps enqueueing ends, and
 * cancels none enqueued after it began.
 */
export function cancelLoopStep(
  db: Kysely<Database>,
  filter: OutboxFilter,
  scopeTenant: string | null,
  o: BulkOptions & { span: BulkLoopSpan | null },
) {
  return loopStep(
    db,
    o.span,
    (span) => cancelMatching(db, filter, scopeTenant, { ...o, span }),
    // One whose send has started: left, as notStarted leaves it; pending again behind the loop's
    // position, left by the loop too, so named. Sent (or failed) meanwhile, nothing is left of it.
    sendingPassed(
      db,
      filter,
      scopeTenant,
      {
        inFlight: started,
        stillLeft: (eb) =>
          eb.or([
            eb.and([eb('status', '=', 'sending'), started(eb)]),
            eb.and([matchOutbox(eb, filter, scopeTenant), cancellable(eb)]),
          ]),
      },
      o.limit,
    ),
  )
}
