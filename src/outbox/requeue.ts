// Requeueing failed or cancelled rows as fresh pending rows, then waking the workers.
//
// Decision: last_error_code / last_error are KEPT. The row's last failure stays visible until its
// next attempt replaces it, and email_attempts keeps every attempt anyway. attempts restart at 0,
// the cancel marker is cleared. The mark of a send that may have reached the provider
// (send_started_at, kept only when the outcome was never learned) is KEPT: the next attempt looks
// the message up in the mailbox (or, with the hold policy, holds it for review) before sending it
// again; a row failed as ambiguous_send has none, so retrying it sends it. send_at becomes the
// later of its schedule and now(): a row cancelled before its sendAt must not go out early, while
// a failed row (due long ago) goes now.
// A row past its expires_at is never requeued: an expired message (an OTP, a reset link) must not
// go out late.
import { type ExpressionBuilder, type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { AppError } from '../errors.ts'
import type { BulkOptions } from './cancel.ts'
import { countMatching, lowestMatching } from './candidate-ids.ts'
import { findOutboxRow } from './inspect.ts'
import { withLockedInIdOrder } from './locked-in-id-order.ts'
import { matchOutbox, type OutboxFilter } from './outbox-filter.ts'
import { type OutboxSummary, SUMMARY_COLUMNS, toOutboxSummary } from './outbox-view.ts'
import { wakeWorkers } from './wake-workers.ts'

const requeueSet = {
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

const requeueable = (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) =>
  eb.and([
    eb('status', 'in', ['failed', 'cancelled']),
    eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', sql<Date>`now()`)]),
  ])

/** One row back to pending; null when it is not failed/cancelled, has expired, or is not visible. */
export async function requeueOutboxRow(
  db: Kysely<Database>,
  id: string,
  scopeTenant: string | null,
): Promise<OutboxSummary | null> {
  const row = await db
    .updateTable('mailer.email_outbox')
    .set(requeueSet)
    .where('id', '=', id)
    .where(requeueable)
    .$if(scopeTenant !== null, (q) => q.where('tenant', '=', scopeTenant!))
    .returning(SUMMARY_COLUMNS)
    .executeTakeFirst()
  return row ? toOutboxSummary(row) : null
}

// A row refused as not failed or cancelled may be so by the time it is read (a worker settled it in
// between): it is tried once more rather than refused as expired or in a state it no longer has.
const REQUEUE_TRIES = 2

/** Requeue one row and wake the workers (at commit), or say why not: not_found or conflict. */
export async function requeueOutbox(
  db: Kysely<Database>,
  id: string,
  scopeTenant: string | null,
): Promise<OutboxSummary> {
  for (let tries = 1; ; tries++) {
    const row = await requeueOutboxRow(db, id, scopeTenant)
    if (row) {
      await wakeWorkers(db)
      return row
    }
    const current = await findOutboxRow(db, id, scopeTenant)
    if (!current) throw new AppError('not_found', `outbox row ${id} does not exist`)
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

/** How many rows a bulk retry with this filter would requeue now (expired rows excluded). */
export async function countRequeueable(
  db: Kysely<Database>,
  filter: OutboxFilter,
  scopeTenant: string | null,
): Promise<number> {
  return countMatching(db, (eb) => eb.and([matchOutbox(eb, filter, scopeTenant), requeueable(eb)]))
}

interface BulkRequeueResult {
  items: { id: string; outcome: 'requeued' }[]
  more: boolean
}

/** Requeues a batch (lowest ids first) and wakes the workers when any row was requeued. */
export async function requeueMatching(
  db: Kysely<Database>,
  filter: OutboxFilter,
  scopeTenant: string | null,
  o: BulkOptions,
): Promise<BulkRequeueResult> {
  const matching = (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) =>
    eb.and([matchOutbox(eb, filter, scopeTenant), requeueable(eb)])
  const ids = await lowestMatching(db, ['failed', 'cancelled'], matching, o.limit)
  if (ids.length === 0) return { items: [], more: false }
  // Locks the candidates in id order, checking the filter again on each latest version, then
  // updates them.
  const rows = await withLockedInIdOrder(db, ids, matching)
    .updateTable('mailer.email_outbox')
    .set(requeueSet)
    .where('id', 'in', (eb) => eb.selectFrom('locked').select('id'))
    .returning('id')
    .execute()
  if (rows.length > 0) await wakeWorkers(db)
  const items = rows
    .map((r) => ({ id: String(r.id), outcome: 'requeued' as const }))
    .sort((a, b) => Number(BigInt(a.id) - BigInt(b.id)))
  return { items, more: ids.length === o.limit }
}
