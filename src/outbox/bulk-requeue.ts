// Bulk requeue: a filter's failed and cancelled rows back to pending, a batch at a time (a loop's within its span), and the count a retry would requeue.
import type { ExpressionBuilder, Kysely } from 'kysely'
import type { Database } from '../db/schema.ts'
import type { BulkOptions } from './bulk-cancel.ts'
import { type BulkLoopSpan, inSpan, loopStep } from './bulk-loop-span.ts'
import {
  countFinishedWithCode,
  countMatching,
  lowestFinishedWithCode,
  lowestMatching,
} from './candidate-ids.ts'
import { sendingPassed } from './left-sending.ts'
import { withLockedInIdOrder } from './locked-in-id-order.ts'
import { matchOutbox, type OutboxFilter } from './outbox-filter.ts'
import { probeDueHint } from './probe-due-hint.ts'
import { requeueable, requeueSet, withinSenders } from './requeue.ts'
import { wakeWorkers } from './wake-workers.ts'

/**
 * The lastErrorCode whose rows a retry finds first by their code (0025's index), or null: none, or
 * a narrower index already finds the rows (a tenant's, 0085; ids by the primary key; a dedupe key's;
 * a correlation id's).
 */
function codeFirst(filter: OutboxFilter, scopeTenant: string | null): string | null {
  const narrower =
    filter.tenant ?? scopeTenant ?? filter.ids ?? filter.dedupeKey ?? filter.correlationId
  return narrower == null ? (filter.lastErrorCode ?? null) : null
}

/**
 * How many rows a bulk retry with this filter would requeue now (expired rows excluded), within
 * `senders` (`inside`, true) or outside them (false: what a confined caller's retry leaves).
 * A row's expires_at is read from the heap, so the count reads each candidate row's: the failed and
 * cancelled rows, or a tenant's (email_outbox_tenant_failed_cancelled_idx, 0085), or with a
 * lastErrorCode only that code's (countFinishedWithCode, codeFirst).
 */
export async function countRequeueable(
  db: Kysely<Database>,
  filter: OutboxFilter,
  scopeTenant: string | null,
  senders: ReadonlySet<string> | null = null,
  inside = true,
  /** A loop's rest: the rows its next calls would take (null: every matching row). */
  span: BulkLoopSpan | null = null,
): Promise<number> {
  const within = withinSenders(senders)
  // mayHaveBeenDelivered apart: checked on the rows the rest matches, their history read at once.
  const { mayHaveBeenDelivered: delivered, ...cheap } = filter
  const where = (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) =>
    eb.and([
      matchOutbox(eb, cheap, scopeTenant),
      requeueable(eb),
      inside ? within(eb) : eb.not(within(eb)),
      inSpan(span)(eb),
    ])
  const code = codeFirst(filter, scopeTenant)
  return code === null
    ? countMatching(db, where, delivered)
    : countFinishedWithCode(db, code, where, span, delivered)
}

/** The statuses a retry takes rows from that the filter's status leaves. */
const requeuedStatuses = (filter: OutboxFilter) =>
  (['failed', 'cancelled'] as const).filter((s) => filter.status?.includes(s) ?? true)

interface BulkRequeueResult {
  items: { id: string; outcome: 'requeued' }[]
  more: boolean
  /** The highest id the batch read (requeued or left as it stopped matching), null for none. */
  last: string | null
}

/**
 * Requeues a batch (lowest ids first) and wakes the workers when any row was requeued. With a
 * lastErrorCode (codeFirst) the batch's ids are that code's rows' (lowestFinishedWithCode): found
 * in id order through the failed and cancelled rows' heap, a rare code's batch read most of them.
 */
export async function requeueMatching(
  db: Kysely<Database>,
  filter: OutboxFilter,
  scopeTenant: string | null,
  o: BulkOptions & { senders?: ReadonlySet<string> | null; span?: BulkLoopSpan | null },
): Promise<BulkRequeueResult> {
  const within = withinSenders(o.senders ?? null)
  const span = o.span ?? null
  const matching = (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) =>
    eb.and([matchOutbox(eb, filter, scopeTenant), requeueable(eb), within(eb), inSpan(span)(eb)])
  const code = codeFirst(filter, scopeTenant)
  // By status, mayHaveBeenDelivered is checked on the rows in id order (candidateIds' delivered),
  // its history probe then reaching the batch's rows, not every failed row before the sort.
  const { mayHaveBeenDelivered: delivered, ...cheap } = filter
  const cheapMatching = (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) =>
    eb.and([matchOutbox(eb, cheap, scopeTenant), requeueable(eb), within(eb), inSpan(span)(eb)])
  const ids =
    code === null
      ? await lowestMatching(db, ['failed', 'cancelled'], cheapMatching, o.limit, delivered)
      : await lowestFinishedWithCode(db, code, requeuedStatuses(filter), matching, o.limit, span)
  if (ids.length === 0) return { items: [], more: false, last: null }
  // Locks the candidates in id order, checking the filter again on each latest version, then
  // updates them.
  const rows = await withLockedInIdOrder(db, ids, matching)
    .with('requeued', (qb) =>
      qb
        .updateTable('mailer.email_outbox')
        .set(requeueSet)
        .where('id', 'in', qb.selectFrom('locked').select('id'))
        .returning(['id', 'status', 'send_at', 'sender_key']),
    )
    .with('hint', () => probeDueHint('requeued'))
    .selectFrom('requeued')
    .select('id')
    .execute()
  if (rows.length > 0) await wakeWorkers(db)
  const items = rows
    .map((r) => ({ id: String(r.id), outcome: 'requeued' as const }))
    .sort((a, b) => Number(BigInt(a.id) - BigInt(b.id)))
  return { items, more: ids.length === o.limit, last: ids[ids.length - 1]! }
}

/**
 * One call of a retry loop (loopStep): requeueMatching within `span` (null: the loop's first call),
 * the span its next call takes, null once `more` is false, and the rows it passed being sent
 * (leftSending).
 */
export function requeueLoopStep(
  db: Kysely<Database>,
  filter: OutboxFilter,
  scopeTenant: string | null,
  o: BulkOptions & { senders?: ReadonlySet<string> | null; span: BulkLoopSpan | null },
) {
  const within = withinSenders(o.senders ?? null)
  return loopStep(
    db,
    o.span,
    (span) => requeueMatching(db, filter, scopeTenant, { ...o, span }),
    // A row being sent: failed again behind the loop's position, the loop leaves it, so named;
    // pending again, it may fail yet. Sent (or cancelled, unless the filter retries those) meanwhile,
    // nothing is left of it.
    sendingPassed(
      db,
      filter,
      scopeTenant,
      {
        inFlight: within,
        stillLeft: (eb) =>
          eb.and([
            within(eb),
            eb.or([
              eb('status', 'in', ['pending', 'sending']),
              eb.and([matchOutbox(eb, filter, scopeTenant), requeueable(eb)]),
            ]),
          ]),
      },
      o.limit,
    ),
  )
}
