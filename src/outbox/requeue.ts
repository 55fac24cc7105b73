// Requeueing failed or cancelled rows as fresh pending rows, then waking the workers.
//
// Decision: last_error_code / last_error are KEPT. The row's last failure stays visible until its
// next attempt replaces it, and email_attempts keeps every attempt anyway. attempts restart at 0,
// the cancel marker is cleared. The mark of a send that may have reached the provider
// (send_started_at, kept only when the outcome was never learned) is KEPT: the next attempt looks
// the message up in the mailbox (or, with the hold policy, holds it for review) before sending it
// again; a row failed as ambiguous_send has none, so retrying it sends it. send_at becomes the
// later of its schedule and now(): a row cancelled before its sendAt must not go out early, while
// a failed row (due long ago) goes now. A row of MAIL_FROM's requeued for later while its probe is
// owed writes its due hint in the same statement (probe-due-hint.ts): a waiting worker's claim, woken
// by the requeue, waits for it and not for the later row's time it kept.
// A row past its expires_at is never requeued: an expired message (an OTP, a reset link) must not
// go out late. A caller confined to sender mailboxes (a token's senders claim) requeues only rows
// sent from one of them or from MAIL_FROM: a retry sends mail as the row's mailbox, as an enqueue does.
import { type ExpressionBuilder, type Kysely, type SqlBool, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { AppError } from '../errors.ts'
import type { Where } from './candidate-ids.ts'
import { findOutboxRow } from './outbox-row.ts'
import { type OutboxSummary, SUMMARY_COLUMNS, toOutboxSummary } from './outbox-view.ts'
import { probeDueHint } from './probe-due-hint.ts'
import { wakeWorkers } from './wake-workers.ts'

export const requeueSet = {
  status: 'pending' as const,
  attempts: 0,
  send_at: sql<never>`greatest(send_at, now())`,
  cancel_requested_at: null,
  sent_at: null,
  lease_owner: null,
  // A hand UPDATE re-keys pending and sending rows only (sql/0042): a failed or cancelled row's
  // message or template may have changed since its key was written.
  sender_key: sql<string | null>`mailer.row_sender_key(message, template)`,
}

export const requeueable = (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) =>
  eb.and([
    eb('status', 'in', ['failed', 'cancelled']),
    eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', sql<Date>`now()`)]),
  ])

/**
 * The rows a caller confined to `senders` (senderKey's keys; null: any) may requeue: a row's sender
 * as mailer.row_sender_key reads it now (sql/0039: its message's from, else its template's
 * from_address; NULL for none, MAIL_FROM's, which such a caller may enqueue too; '?' when only its
 * rendering can say, never within), one of `senders`. Read from the row, not its sender_key, which a
 * finished row may hold stale (requeueSet writes it anew).
 */
export function withinSenders(senders: ReadonlySet<string> | null): Where {
  return (eb) => (senders === null ? eb.lit(true) : senderWithin(senders))
}

const senderWithin = (senders: ReadonlySet<string>) =>
  sql<SqlBool>`coalesce(mailer.row_sender_key(message, template) = any(${[...senders]}::text[]), true)`

/** One row back to pending; null when it is not failed/cancelled, has expired, is not visible, or is from a mailbox outside `senders`. */
export async function requeueOutboxRow(
  db: Kysely<Database>,
  id: string,
  scopeTenant: string | null,
  senders: ReadonlySet<string> | null = null,
): Promise<OutboxSummary | null> {
  const row = await db
    .with('requeued', (qb) =>
      qb
        .updateTable('mailer.email_outbox')
        .set(requeueSet)
        .where('id', '=', id)
        .where(requeueable)
        .where(withinSenders(senders))
        .$if(scopeTenant !== null, (q) => q.where('tenant', '=', scopeTenant!))
        .returning([...SUMMARY_COLUMNS, 'sender_key']),
    )
    .with('hint', () => probeDueHint('requeued'))
    .selectFrom('requeued')
    .select(SUMMARY_COLUMNS)
    .executeTakeFirst()
  return row ? toOutboxSummary(row) : null
}

// A row refused as not failed or cancelled may be so by the time it is read (a worker settled it in
// between): it is tried once more rather than refused as expired or in a state it no longer has.
const REQUEUE_TRIES = 2

/** Whether row `id` is sent from a mailbox within `senders` (withinSenders), by its latest version; by the primary key. */
async function isWithinSenders(
  db: Kysely<Database>,
  id: string,
  senders: ReadonlySet<string>,
): Promise<boolean> {
  const r = await db
    .selectFrom('mailer.email_outbox')
    .select(senderWithin(senders).as('within'))
    .where('id', '=', id)
    .executeTakeFirst()
  return r?.within === true
}

/**
 * Requeue one row and wake the workers (at commit), or say why not: not_found, sender_not_allowed
 * (whatever its state: such a caller may never retry it), or conflict.
 */
export async function requeueOutbox(
  db: Kysely<Database>,
  id: string,
  scopeTenant: string | null,
  senders: ReadonlySet<string> | null = null,
): Promise<OutboxSummary> {
  for (let tries = 1; ; tries++) {
    const row = await requeueOutboxRow(db, id, scopeTenant, senders)
    if (row) {
      await wakeWorkers(db)
      return row
    }
    const current = await findOutboxRow(db, id, scopeTenant)
    if (!current) throw new AppError('not_found', `outbox row ${id} does not exist`)
    // Its id only: the mailbox is not echoed (the problem reaches logs and clients alike).
    if (senders !== null && !(await isWithinSenders(db, id, senders))) {
      throw new AppError(
        'sender_not_allowed',
        `outbox row ${id} is sent from a mailbox the token's senders claim does not list (or only its rendering can say which): it may not retry it`,
      )
    }
    const finished = current.status === 'failed' || current.status === 'cancelled'
    if (!finished) {
      throw new AppError(
        'conflict',
        `outbox row ${id} is ${current.status}; only failed or cancelled rows can be retried`,
        { status: current.status },
      )
    }
    if (tries < REQUEUE_TRIES) continue
    throw new AppError(
      'conflict',
      current.expiresAt !== null
        ? `outbox row ${id} expired at ${current.expiresAt.toISOString()}; it is never sent late`
        : `outbox row ${id} kept changing state while being retried; try again`,
      { status: current.status },
    )
  }
}
