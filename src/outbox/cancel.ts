// Cancelling a row: a pending row is cancelled at once; a claimed one, or one an interrupted send may have delivered, records the request for its worker (a bulk cancel writes alike: bulk-cancel.ts).
import { type ExpressionBuilder, type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { AppError } from '../errors.ts'
import { earlierInterrupted } from './earlier-interrupted.ts'
import { kindLit, OLD_BOTH, OLD_EARLIER } from './history-kind.ts'
import { summarySelection } from './lease-owner-name.ts'
import { afterMessage, afterWords, EARLIER_SEND_MAY_HAVE_DELIVERED } from './may-have-delivered.ts'
import { type OutboxSummary, SUMMARY_COLUMNS, toOutboxSummary } from './outbox-view.ts'
import { wakeForCancelledProbeRow } from './probe-due-hint.ts'
import { PACED_CODE } from './settle-item.ts'

/**
 * `cancel_requested`: the row is `sending`, and its worker cancels it before the Graph call starts;
 * or it is pending with an interrupted earlier send's mark, and the worker that claims it looks that
 * send up, never sending it again (cancelled-interrupted.ts): `sent` if it went, else `cancelled`.
 */
export type CancelOutcome = 'cancelled' | 'cancel_requested'

export const outcomeOf = (status: string): CancelOutcome =>
  status === 'cancelled' ? 'cancelled' : 'cancel_requested'

/** The words a cancel appends naming an interrupted send its history holds unmarked (earlier-interrupted.ts). */
const EARLIER_SEND = afterWords(EARLIER_SEND_MAY_HAVE_DELIVERED)

/**
 * A kept error that names an earlier interrupted send already: in this release's words, or in an
 * earlier release's (history-kind.ts: a failure it wrote, then retried through the API by this
 * one), which the cancel must not name it after again in other words. Never null.
 */
const earlierSendNamed = sql<boolean>`(${sql.join(
  [EARLIER_SEND_MAY_HAVE_DELIVERED, OLD_EARLIER, OLD_BOTH].map(
    (words) => sql`strpos(coalesce(last_error, ''), ${sql.lit(words)}) > 0`,
  ),
  sql` or `,
)})`

// The first request's time is kept, so repeating a cancel is harmless. A pending row that keeps an
// interrupted send's mark may have been delivered: it stays pending, due now, for a worker to look
// that send up and settle it (a user who cancels learns whether the mail went). Only its first
// request moves it: a repeat (never matched, see pendingCancelRecorded, unless it raced the first)
// brings no early lookup ahead of a wait its worker set to look again.
export const cancelSet = {
  status: sql<'cancelled'>`case when status = 'pending' and send_started_at is null then 'cancelled' else status end`,
  // A row cancelled here keeps its last error, naming an interrupted send its history holds
  // unmarked (earlier-interrupted.ts: held, then retried) unless its words do already (the hold's
  // own, or an ending that named it before a retry): it may have gone once, whatever came since.
  // The kept error is a failure's message (http_500): the words follow it in parentheses; a
  // pacing turn's (mailbox_paced) is our own, wholly: after "; " (may-have-delivered.ts).
  last_error: sql<string | null>`case when status = 'pending' and send_started_at is null
      and last_error_code is distinct from 'ambiguous_send'
      and not ${earlierSendNamed}
      and ${earlierInterrupted(sql`email_outbox.id`, sql`email_outbox.last_error_code`)}
    then coalesce(last_error || case when last_error_code = ${sql.lit(PACED_CODE)}
                                     then ${sql.lit(EARLIER_SEND)}
                                     else ${sql.lit(afterMessage(EARLIER_SEND_MAY_HAVE_DELIVERED))} end,
                  ${sql.lit(EARLIER_SEND_MAY_HAVE_DELIVERED)})
    else last_error end`,
  cancel_requested_at: sql<Date>`coalesce(cancel_requested_at, now())`,
  send_at: sql<Date>`case when status = 'pending' and send_started_at is not null and cancel_requested_at is null
                          then least(send_at, now()) else send_at end`,
}

/**
 * A pending row whose cancel is recorded already, with an interrupted send's mark (left for a
 * worker to look that send up): a cancel leaves it as it is, unwritten, its worker not woken again,
 * and answers it as it is (202); a bulk cancel passes it over. (One without the mark, left so by an
 * older binary or a hand, is cancelled at once as before.) Of the outbox row `row` (an alias), else
 * of the statement's own email_outbox. The one definition: the single cancel's update and its
 * answer as it is, and the bulk cancel's exclusion, each read it.
 */
export const pendingCancelRecorded = <DB, TB extends keyof DB>(
  eb: ExpressionBuilder<DB, TB>,
  row?: 'r',
) => {
  const column = (c: string) => sql.ref<unknown>(row === undefined ? c : `${row}.${c}`)
  return eb.and([
    eb(column('status'), '=', 'pending'),
    eb(column('cancel_requested_at'), 'is not', null),
    eb(column('send_started_at'), 'is not', null),
  ])
}

/**
 * A select-list column of a statement over `cancelled` (its rows as the cancel left them): wakes
 * every listening worker at commit when a row was left pending (its lookup due now), as an enqueue's
 * trigger does; one notification per transaction. Read for its effect only.
 */
export const wakeForLookup = (cancelled: string) =>
  sql<boolean | null>`case when ${sql.ref(`${cancelled}.status`)} = 'pending'
                           then pg_notify('mailer_outbox', '') is null end`

/**
 * A sending row whose send has started cannot be stopped any more, so it is never stamped: a
 * request recorded on it would promise a cancel that the send then ignores. A pending row keeps the
 * send_started_at of an interrupted earlier send (evidence for the ambiguity check) and stays
 * cancellable (its cancel recorded, see cancelSet). Part of each UPDATE's WHERE, so it is judged on the locked, latest row version: a
 * worker's start that commits first turns the cancel away, one that comes after sees the request.
 */
export const notStarted = (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) =>
  eb.or([
    eb('status', '=', 'pending'),
    eb.and([eb('status', '=', 'sending'), eb('send_started_at', 'is', null)]),
  ])

/** The history entry of a row cancelled through the API while pending. */
const CANCELLED_HERE = 'cancelled through the API before it was claimed'

/**
 * A row cancelled here (it was pending) gets its history entry, as one its worker cancels does:
 * the attempt history is what the throttle deadline reads runs of waits from, and a row retried
 * after this cancel must start a new one. A row left `sending` gets its entry from its worker.
 */
export const historyOfCancelled = (db: Kysely<Database>) =>
  db
    .insertInto('mailer.email_attempts')
    .columns(['outbox_id', 'attempt', 'outcome', 'error_code', 'error', 'kind'])
    .expression(
      db
        // biome-ignore lint/suspicious/noExplicitAny: the CTE named below, unknown to the schema type
        .selectFrom('cancelled_now' as any)
        .select([
          'id',
          'attempts',
          sql.lit('cancelled').as('outcome'),
          sql.lit('cancelled').as('error_code'),
          // Only a row without an interrupted send's mark is cancelled here (cancelSet); one its
          // history holds unmarked is named, as the row's last error names it.
          sql<string>`case when ${earlierInterrupted(sql`cancelled_now.id`, sql`cancelled_now.last_error_code`)}
            then ${sql.lit(`${CANCELLED_HERE}${EARLIER_SEND}`)} else ${sql.lit(CANCELLED_HERE)} end`.as(
            'error',
          ),
          kindLit('attempt').as('kind'),
        ])
        .where('status', '=', 'cancelled'),
    )

/**
 * One row, if pending or sending with its send not started; null otherwise (or another tenant's,
 * or pending with its cancel recorded already: cancelOutbox answers it as it is).
 */
export async function cancelOutboxRow(
  db: Kysely<Database>,
  id: string,
  scopeTenant: string | null,
): Promise<OutboxSummary | null> {
  const row = await db
    .with('cancelled_now', (qb) =>
      qb
        .updateTable('mailer.email_outbox')
        .set(cancelSet)
        .where('id', '=', id)
        .where(notStarted)
        .where((eb) => eb.not(pendingCancelRecorded(eb)))
        .$if(scopeTenant !== null, (q) => q.where('tenant', '=', scopeTenant!))
        .returning([...SUMMARY_COLUMNS, 'sender_key']),
    )
    .with('history', () => historyOfCancelled(db))
    .selectFrom('cancelled_now')
    .select([
      ...summarySelection('cancelled_now'),
      wakeForCancelledProbeRow('cancelled_now').as('woke'),
      wakeForLookup('cancelled_now').as('woke_lookup'),
    ])
    .executeTakeFirst()
  return row ? toOutboxSummary(row) : null
}

/** The row a cancel did not write, as it is now, and whether it is pendingCancelRecorded. */
async function rowAsItIs(
  db: Kysely<Database>,
  id: string,
  scopeTenant: string | null,
): Promise<{ row: OutboxSummary; recorded: boolean } | null> {
  const found = await db
    .selectFrom('mailer.email_outbox')
    .select([
      ...summarySelection('mailer.email_outbox'),
      (eb) => pendingCancelRecorded(eb).as('recorded'),
    ])
    .where('id', '=', id)
    .$if(scopeTenant !== null, (q) => q.where('tenant', '=', scopeTenant!))
    .executeTakeFirst()
  if (!found) return null
  const { recorded, ...row } = found
  return { row: toOutboxSummary(row), recorded: recorded === true }
}

// A row refused as started may be cancellable again by the time it is read (its send failed, was
// rescheduled, perhaps claimed anew): then the cancel is tried again rather than reporting a state
// the row no longer has.
const CANCEL_TRIES = 3

/**
 * Cancel one row, or say why not: not_found (absent or another tenant's), send_started (sending,
 * the Graph call under way) or conflict (finished).
 */
export async function cancelOutbox(
  db: Kysely<Database>,
  id: string,
  scopeTenant: string | null,
): Promise<{ outcome: CancelOutcome; row: OutboxSummary }> {
  for (let tries = 1; ; tries++) {
    const row = await cancelOutboxRow(db, id, scopeTenant)
    if (row) return { outcome: outcomeOf(row.status), row }
    const found = await rowAsItIs(db, id, scopeTenant)
    if (!found) throw new AppError('not_found', `outbox row ${id} does not exist`)
    const { row: current, recorded } = found
    if (recorded) return { outcome: 'cancel_requested', row: current }
    if (current.status === 'sending' && current.sendStartedAt !== null) {
      throw new AppError(
        'send_started',
        `outbox row ${id} is being sent and its send has started; it can no longer be cancelled`,
        { status: current.status },
      )
    }
    const live = current.status === 'pending' || current.status === 'sending'
    if (live && tries < CANCEL_TRIES) continue
    throw new AppError(
      'conflict',
      live
        ? `outbox row ${id} kept changing state while being cancelled; try again`
        : `outbox row ${id} is ${current.status}; only pending or sending rows can be cancelled`,
      { status: current.status },
    )
  }
}
