// Runs a bulk cancel or retry (or its dry run) under the bulk statement timeout, within its loop's cursor, and logs the rows it acted on.
import type { Context } from 'hono'
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.ts'
import type { BulkLoopSpan } from '../outbox/bulk-loop-span.ts'
import type { OutboxFilter } from '../outbox/outbox-filter.ts'
import { withStatementTimeout } from '../outbox/statement-timeout.ts'
import { type BulkAction, decodeLoopCursor, encodeLoopCursor } from './bulk-loop-cursor.ts'
import { toOutboxFilter } from './bulk-schemas.ts'
import { type AppEnv, BULK_TIMEOUT_MS } from './context.ts'

// Bulk cancel and bulk retry differ only in which rows they count and what they do to them.
export async function runBulk<I extends { id: string }, C extends object = object>(
  c: Context<AppEnv>,
  body: {
    filter: Parameters<typeof toOutboxFilter>[0]
    dryRun: boolean
    limit: number
    cursor?: string | undefined
  },
  action: BulkAction,
  /** The rows it would act on: within `span`, the rest of a loop (null: every matching row). */
  count: (
    db: Kysely<Database>,
    f: OutboxFilter,
    tenant: string | null,
    span: BulkLoopSpan | null,
  ) => Promise<number>,
  /** One call of a loop (loopStep): its rows, the span of the loop's next call, the rows it passed being sent. */
  step: (
    db: Kysely<Database>,
    f: OutboxFilter,
    tenant: string | null,
    o: { limit: number; span: BulkLoopSpan | null },
    // Counts of its own (a bulk cancel's cancelled and cancelRequested) join the answer as given.
  ) => Promise<
    {
      items: I[]
      more: boolean
      span: BulkLoopSpan
      next: BulkLoopSpan | null
      leftSending: string[]
      leftSendingMore: boolean
    } & C
  >,
  /**
   * The matching rows the caller's senders claim leaves out, for a caller with one: within the
   * call's span (the rest of its loop, as the call bounds it; null: every matching row), so a
   * loop's count shrinks as it passes them.
   */
  outside?: (
    db: Kysely<Database>,
    f: OutboxFilter,
    tenant: string | null,
    span: BulkLoopSpan | null,
  ) => Promise<number>,
) {
  // Refused before any statement: nothing is acted on.
  const span = decodeLoopCursor(action, body.cursor)
  const filter = toOutboxFilter(body.filter)
  const tenant = c.get('principal').tenant
  const result = await withStatementTimeout(c.get('database').db, BULK_TIMEOUT_MS, async (trx) => {
    if (body.dryRun) {
      const r = {
        dryRun: true,
        matched: await count(trx, filter, tenant, span),
        items: [] as I[],
        more: false,
      }
      return outside ? { ...r, outsideSenders: await outside(trx, filter, tenant, span) } : r
    }
    const { span: within, ...stepped } = await step(trx, filter, tenant, {
      limit: body.limit,
      span,
    })
    const r = bulkResult(action, stepped)
    return outside ? { ...r, outsideSenders: await outside(trx, filter, tenant, within) } : r
  })
  // Each row acted on, by id: a row's story in the log names its bulk cancel or retry too.
  c.get('log').info(`bulk ${action}`, {
    dryRun: result.dryRun,
    matched: result.matched,
    ...('outsideSenders' in result ? { outsideSenders: result.outsideSenders } : {}),
    ...(result.dryRun ? {} : { outboxIds: result.items.map((i) => i.id) }),
    ...('leftSending' in result ? { leftSending: result.leftSending } : {}),
    ...('leftSendingMore' in result ? { leftSendingMore: true } : {}),
  })
  return result
}

/**
 * A call's answer: its next span as `nextCursor`, absent once `more` is false; the rows it passed
 * being sent as `leftSending`, absent when none (so an answer passing none is as it was), and
 * `leftSendingMore` when it passed more than it names, absent otherwise.
 */
const bulkResult = <I, C extends object>(
  action: BulkAction,
  {
    items,
    more,
    next,
    leftSending,
    leftSendingMore,
    ...counts
  }: {
    items: I[]
    more: boolean
    next: BulkLoopSpan | null
    leftSending: string[]
    leftSendingMore: boolean
  } & C,
) => ({
  dryRun: false,
  matched: items.length,
  items,
  more,
  ...counts,
  ...(next === null ? {} : { nextCursor: encodeLoopCursor(action, next) }),
  ...(leftSending.length === 0 ? {} : { leftSending }),
  ...(leftSendingMore ? { leftSendingMore: true as const } : {}),
})
