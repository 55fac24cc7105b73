// Wire shapes of bulk cancel / retry: a filter, a dry run that only counts, per-row results.
import { z } from '@hono/zod-openapi'
import type { OutboxStatus } from '../db/schema.ts'
import type { OutboxFilter } from '../outbox/outbox-filter.ts'
import { CorrelationIdFilter, TemplateFilter, TenantFilter } from './bounded-filter.ts'
import { quoted } from './issue-wording.ts'
import { OutboxId } from './outbox-id.ts'
import { withStorableText } from './storable-text.ts'
import { TimeBound } from './time-bound.ts'
import { windowsHoldTime } from './time-windows.ts'
import { closedKeys } from './unknown-keys.ts'

/** A bulk body's keys, as its refusals name them. */
const BODY_KEYS = ['filter', 'dryRun', 'limit', 'cursor']

/** A bulk body's shape, as its refusals name it. */
export const BULK_BODY_SHAPE =
  '{"filter": {...}, "dryRun": ..., "limit": ...} (dryRun and limit optional)'
const FILTER_REQUIRED = `is required: the body must be ${BULK_BODY_SHAPE}`

// Which route acts on a status the other refuses: a client that sends failed rows to cancel is told
// where they go, not only the two words this route takes. A sent row goes to neither.
const ACTED_ON_BY: Partial<Record<OutboxStatus, string>> = {
  pending: 'pending and sending rows are cancelled, POST /v1/outbox/cancel',
  sending: 'pending and sending rows are cancelled, POST /v1/outbox/cancel',
  failed: 'failed and cancelled rows are retried, POST /v1/outbox/retry',
  cancelled: 'failed and cancelled rows are retried, POST /v1/outbox/retry',
  sent: 'a sent row is neither cancelled nor retried',
}

/** The refusal of a filter's status this route does not act on: what it takes, then why or what was given. */
function statusRefused(statuses: readonly OutboxStatus[], input: unknown): string {
  const takes = `must be one of ${statuses.join(', ')}`
  if (typeof input !== 'string') return takes
  // Own keys only: "toString" or "constructor" is no status, not a word of Object's prototype.
  const elsewhere = Object.hasOwn(ACTED_ON_BY, input)
    ? ACTED_ON_BY[input as OutboxStatus]
    : undefined
  return elsewhere ? `${takes}: ${elsewhere}` : `${takes} (given ${quoted(input)})`
}

function bulkFilter<const S extends readonly [OutboxStatus, ...OutboxStatus[]]>(statuses: S) {
  const criteria = {
    status: z
      .array(z.enum(statuses, { error: (iss) => statusRefused(statuses, iss.input) }))
      .min(1)
      .optional(),
    tenant: TenantFilter,
    createdFrom: TimeBound,
    createdTo: TimeBound,
    sentFrom: TimeBound,
    sentTo: TimeBound,
    dedupeKey: z.string().min(1).optional(),
    correlationId: CorrelationIdFilter,
    lastErrorCode: z.string().min(1).optional().openapi({
      description:
        'The row\'s lastErrorCode, e.g. `throttled`: retry what one cause failed, not held ambiguous sends or rejected recipients. Matched alone: that code\'s rows an interrupted send may have delivered are taken too (`sendStartedAt` set, or `lastError` containing `may have delivered it`); to leave them out, add `"mayHaveBeenDelivered": false`',
    }),
    template: TemplateFilter,
    ids: z.array(OutboxId).min(1).max(1000).optional(),
    mayHaveBeenDelivered: z.boolean().optional().openapi({
      description:
        'false: only rows no send may have delivered, safe to send again unlooked; true: only those one may have (to look for in the mailbox\'s Sent Items first). A send may have delivered a row that was sent, that keeps an interrupted send\'s mark (`sendStartedAt` set, `lastError` naming the send that may have delivered it), or whose history holds a send held `ambiguous_send` (held now, or retried since: `lastError` naming "an earlier interrupted send"). `{"status": ["failed"], "lastErrorCode": "throttled", "mayHaveBeenDelivered": false}` retries what a fixed cause failed and nothing a retry could send twice; a bulk cancel with false leaves pending rows whose cancel would be recorded for a lookup',
    }),
  }
  // A key of the body given inside it is told it belongs next to it.
  const closed = closedKeys(
    'a criterion of filter',
    Object.keys(criteria),
    {},
    {
      field: 'filter',
      keys: BODY_KEYS.filter((k) => k !== 'filter'),
    },
  )
  return (
    z
      .strictObject(criteria, {
        // Absent: the criteria given beside it are named as belonging inside it (bulkRequest).
        error: (iss) =>
          iss.code === 'invalid_type' && iss.input === undefined
            ? FILTER_REQUIRED
            : closed.error(iss),
      })
      // An empty filter would act on every row: the caller must say what it means. A refinement
      // does not reach the document, so it says so itself (a generated client refuses {} too).
      .refine((f) => Object.keys(f).length > 0, 'must name at least one criterion')
      .superRefine(windowsHoldTime)
      .openapi({
        minProperties: 1,
        description:
          'At least one criterion ({} would act on every row: to mean every row, name the statuses); criteria combine with AND',
      })
  )
}

/** A bulk action's cursor: a loop's next calls act on the rows its first call could, each once. */
const loopCursor = (rest: string, verb: 'cancel' | 'requeue') =>
  z
    .string()
    .min(1)
    .optional()
    .openapi({
      description: `Continue a loop: the \`nextCursor\` of this route's previous answer, passed back unchanged with the same filter. The call then acts only on rows past those the loop's earlier calls read, and none enqueued after its first call: ${rest}. Without it, a call starts again from the lowest matching id. With \`dryRun\`, counts what the rest of the loop would ${verb}`,
    })

// A criterion beside "filter" is told it belongs inside it (and a key of the body inside it, bulkFilter).
const bulkRequest = <F extends z.ZodObject>(filter: F, cursor: ReturnType<typeof loopCursor>) =>
  withStorableText(
    z.strictObject(
      {
        filter,
        dryRun: z.boolean().default(false).openapi({ description: 'Only count the matching rows' }),
        // Past its max the limit is that one problem: int() would add its own bound, 2^53 - 1.
        limit: z.number().min(1).max(1000, { abort: true }).int().default(1000).openapi({
          description:
            "Rows per call, lowest ids first; repeat while `more` is true, passing each answer's `nextCursor` back as `cursor`",
        }),
        cursor,
      },
      closedKeys('a key of the body', BODY_KEYS, {
        filter: Object.keys(filter.shape),
      }),
    ),
  )

export const BulkCancelRequest = bulkRequest(
  bulkFilter(['pending', 'sending']),
  loopCursor(
    'rows the application keeps enqueueing for the filter are left for a later loop, and the loop ends; a row it passed whose send had started (left, as a bulk cancel leaves it) is left too should it be pending again: its call names it in `leftSending`',
    'cancel',
  ),
).openapi('BulkCancelRequest')
export const BulkRetryRequest = bulkRequest(
  bulkFilter(['failed', 'cancelled']),
  loopCursor(
    'a row it requeued that fails again is left for a later loop, and the loop ends even while the cause keeps failing rows; a row it passed in `sending` is left too should it fail again: its call names it in `leftSending`',
    'requeue',
  ),
).openapi('BulkRetryRequest')

export const BulkResult = z
  .object({
    dryRun: z.boolean(),
    matched: z
      .number()
      .int()
      .openapi({ description: 'Rows acted on (a dry run: rows that would be, in total)' }),
    items: z.array(
      z.object({ id: OutboxId, outcome: z.enum(['cancelled', 'cancel_requested', 'requeued']) }),
    ),
    more: z.boolean().openapi({
      description: 'The batch was full: call again for the rest, with `nextCursor` as `cursor`',
    }),
    nextCursor: z.string().optional().openapi({
      description:
        'Present while `more` is true (not a dry run): pass it back as `cursor` (with the same filter) so the next call continues this loop, acting on no row an earlier call of it read and on none enqueued after its first call (each row cancelled or requeued once, and the loop ends)',
    }),
    leftSending: z.array(OutboxId).optional().openapi({
      description:
        "Not a dry run; present when any: the ids (the lowest `limit`; `leftSendingMore` says when there are more) of rows this call passed (up to the highest id it read; a loop's last call, up to the loop's bound) that the filter matches but for their status, being sent: a bulk cancel's whose send had started (left, as a bulk cancel leaves them), a bulk retry's in `sending`. Should such a send fail and the row be pending (a retry's: failed) again, the loop leaves it, as it is behind the loop's position: collect them, and once the loop ends cancel (retry) them with `{\"filter\": {\"ids\": [...]}}`, which acts on those rows alone and on those whose send has ended so. A row read being sent whose send has ended otherwise by the end of the call (sent; a cancel's failed; a retry's cancelled unless the filter retries those) is not named",
    }),
    leftSendingMore: z.literal(true).optional().openapi({
      description:
        "Present (true) when the call left more such rows than `leftSending` names (it names the lowest `limit`), and only then: it reads every row being sent in the rest of its loop before its batch (whatever `limit`) and those it passed again after it, so a row sent meanwhile is not counted. No later call of the loop names them, as they are behind its position. Once the loop has ended, run it again without `cursor` (a retry's new loop also takes the rows this one requeued that failed again), or loop with a higher `limit`",
    }),
    cancelled: z.number().int().optional().openapi({
      description:
        'Bulk cancel only (not a dry run): of `items`, the rows cancelled now (outcome cancelled)',
    }),
    cancelRequested: z.number().int().optional().openapi({
      description:
        'Bulk cancel only (not a dry run): of `items`, the rows whose cancel was recorded for a worker to settle (outcome cancel_requested): claimed rows whose send has not started, and pending rows an interrupted earlier send may have delivered, which a worker looks up and settles sent (it went) or cancelled, never sending them again',
    }),
    outsideSenders: z.number().int().optional().openapi({
      description:
        "Bulk retry by a token with a senders claim only: the rows the filter matches that it leaves, as they are sent from a mailbox the claim does not list (or one only their rendering can say); not per batch: the rest of the loop the call bounds (past the position `cursor` names, none enqueued after the loop began; a dry run without `cursor`, every matching row), so a loop's count shrinks to 0 as it passes them",
    }),
  })
  .openapi('BulkResult')

/** The request's filter as the statements take it: its fields alone, whatever else it carried. */
export function toOutboxFilter(f: OutboxFilter): OutboxFilter {
  return {
    status: f.status,
    tenant: f.tenant,
    createdFrom: f.createdFrom,
    createdTo: f.createdTo,
    sentFrom: f.sentFrom,
    sentTo: f.sentTo,
    dedupeKey: f.dedupeKey,
    correlationId: f.correlationId,
    lastErrorCode: f.lastErrorCode,
    template: f.template,
    ids: f.ids,
    mayHaveBeenDelivered: f.mayHaveBeenDelivered,
  }
}
