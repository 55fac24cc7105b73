// A bulk cancel or retry loop's span of ids: past what its earlier calls read, up to the outbox's highest id at its first call.
import type { ExpressionBuilder, Kysely } from 'kysely'
import type { Database } from '../db/schema.ts'
import type { IdSpan } from './candidate-ids.ts'
import { highestOutboxId } from './highest-outbox-id.ts'

/**
 * A loop's span: the ids past `after` (the last its previous call read; null: none yet) up to
 * `upTo` (the outbox's highest id when the loop began). A row the loop acted on that matches again
 * (a retry's row failing again, a cancel's row back to pending) is behind `after` and left; a row
 * enqueued after it began is past `upTo`: each row once, and the loop ends.
 */
export type BulkLoopSpan = IdSpan

/** The rows of `span` (all rows for none), by the primary key and each status index's id. */
export const inSpan =
  (span: BulkLoopSpan | null) => (eb: ExpressionBuilder<Database, 'mailer.email_outbox'>) =>
    span === null
      ? eb.lit(true)
      : eb.and([
          ...(span.after === null ? [] : [eb('id', '>', span.after)]),
          eb('id', '<=', span.upTo),
        ])

/** A batch of a loop: its answer and the highest id it read (acted on or left), null for none. */
export interface LoopBatch {
  items: { id: string }[]
  more: boolean
  last: string | null
}

/**
 * The rows of a span being sent (sendingPassed), lowest first: `read` before a call's batch, every
 * such row of the span; `left` after it, in one statement, up to `limit` + 1 ids (one past the
 * limit: there are more), the rows of the span it passed in flight now and those of `before` still
 * left (not settled otherwise meanwhile), less those it `acted` on.
 */
export interface PassedSending {
  read: (span: BulkLoopSpan) => Promise<string[]>
  left: (
    passed: BulkLoopSpan,
    before: readonly string[],
    acted: readonly string[],
  ) => Promise<string[]>
  limit: number
}

/**
 * One call of a loop: `batch` within `span` (null: the loop's first call, bounded by the outbox's
 * highest id now), the span it read within (`span`: what else the call counts reads the same
 * rows), the span its next call takes, null once `more` is false, and `leftSending`: the rows
 * `passedSending` finds being sent among those the call passed (up to the highest id it read; its
 * loop's last call, up to the loop's bound) and did not act on, which the loop leaves behind its
 * position, at most its limit, and `leftSendingMore` when more than that are left at its end (no
 * later call of the loop names them: they are behind its position).
 */
export async function loopStep<R extends LoopBatch>(
  db: Kysely<Database>,
  span: BulkLoopSpan | null,
  batch: (span: BulkLoopSpan) => Promise<R>,
  passedSending: PassedSending,
): Promise<
  Omit<R, 'last'> & {
    span: BulkLoopSpan
    next: BulkLoopSpan | null
    leftSending: string[]
    leftSendingMore: boolean
  }
> {
  // An empty outbox: no id is 0 or below, so the batch finds nothing.
  const within = {
    after: span?.after ?? null,
    upTo: span?.upTo ?? (await highestOutboxId(db)) ?? '0',
  }
  // Read before the batch and again after it, each statement seeing the rows as it starts: a send
  // that fails while the batch runs (waiting on a row's lock, a thousand rows' update) brings its
  // row back behind the position before the second read, which alone would miss it; one that
  // starts meanwhile, on a row the batch then leaves, the first misses. The second drops a row the
  // first read whose send settled meanwhile (sent): a follow-up by its id would refuse it.
  const before = await passedSending.read(within)
  const { last, ...r } = await batch(within)
  const next = r.more && last !== null ? { after: last, upTo: within.upTo } : null
  const passed = { after: within.after, upTo: next?.after ?? within.upTo }
  const left = await passedSending.left(
    passed,
    before,
    r.items.map((i) => i.id),
  )
  const { limit } = passedSending
  // More than named: past the limit after the batch. The first read took every row in flight, so a
  // row of it sent meanwhile is dropped however many there were, and the batch is never cut short
  // for them: a loop without `cursor` starts again from the lowest matching id, and one stopped
  // below the rows in flight would act on nothing while they stay so.
  const leftSendingMore = left.length > limit
  const leftSending = left.slice(0, limit)
  return { ...r, span: within, next, leftSending, leftSendingMore }
}
