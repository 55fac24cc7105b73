// Wire shapes of the outbox resource (zod: they validate, and they generate the OpenAPI document).
import { z } from '@hono/zod-openapi'
import { OUTBOX_STATUSES } from '../db/schema.ts'
import { rfc3339Text } from '../db/timestamp-reading.ts'
import { HISTORY_KINDS } from '../outbox/history-kind.ts'
import type { Attempt, OutboxRecord, OutboxSummary } from '../outbox/outbox-view.ts'
import type { RowRendering } from '../outbox/row-rendering.ts'
import { CorrelationIdFilter, TemplateFilter, TenantFilter } from './bounded-filter.ts'
import { DeliveredParam, ListOrderParam, ListStatuses, PageLimit } from './list-params.ts'
import { OutboxId } from './outbox-id.ts'
import { RenderErrorShape, RenderedMessage, toRenderedJson } from './rendered-schemas.ts'
import { withStorableText } from './storable-text.ts'
import { strictQuery } from './strict-query.ts'
import { TimeBound } from './time-bound.ts'
import { windowsHoldTime } from './time-windows.ts'

const Timestamp = z.iso.datetime({ offset: true }).openapi({ example: '2030-01-01T09:00:00.000Z' })
const OutboxStatus = z.enum(OUTBOX_STATUSES).openapi('OutboxStatus')

const DB_PARAM = {
  db: z
    .string()
    .optional()
    .openapi({
      param: { name: 'db', in: 'query' },
      description:
        "Database name (MAILER_DATABASES); optional when one is configured, or the token's db claim names one",
      example: 'default',
    }),
}

export const DbQuery = strictQuery(DB_PARAM)

export const OutboxItem = z
  .object({
    id: OutboxId,
    tenant: z.string(),
    dedupeKey: z.string().nullable(),
    status: OutboxStatus,
    priority: z.number().int(),
    sendAt: Timestamp,
    expiresAt: Timestamp.nullable(),
    attempts: z.number().int(),
    maxAttempts: z.number().int().nullable(),
    lastErrorCode: z.string().nullable(),
    lastError: z.string().nullable(),
    createdAt: Timestamp,
    sentAt: Timestamp.nullable(),
    correlationId: z.string().nullable(),
    template: z.string().nullable(),
    leaseOwner: z.string().nullable().openapi({
      description:
        'The worker holding the lease: its id (host:pid:hex) while the worker registry knows the 3-character key the row names it by, else that key',
    }),
    leaseToken: z.string().nullable(),
    leaseExpiresAt: Timestamp.nullable(),
    sendStartedAt: Timestamp.nullable(),
    cancelRequestedAt: Timestamp.nullable(),
  })
  .openapi('OutboxItem', {
    description:
      'An outbox row without its bodies (message, sourceRow) and unrendered: a list renders no row (each would cost its template read and filled), GET /v1/outbox/{id} renders one (rendered, renderError)',
  })

const OutboxAttempt = z
  .object({
    id: z.string(),
    attempt: z.number().int(),
    workerId: z.string().nullable(),
    startedAt: Timestamp.nullable(),
    finishedAt: Timestamp,
    outcome: z.string().openapi({ example: 'sent' }),
    httpStatus: z.number().int().nullable(),
    requestId: z.string().nullable().openapi({
      description:
        "Graph request-id, for support; for a request Graph never answered, the client-request-id it was sent with (Graph's activity logs keep it)",
    }),
    errorCode: z.string().nullable(),
    error: z.string().nullable(),
    kind: z.enum(HISTORY_KINDS).nullable().openapi({
      description:
        "What the entry records. attempt: an attempt's outcome, a wait, a mailbox lookup's answer, a cancel or an expiry, naming no interrupted send left unresolved (whether its own send was interrupted, errorCode timeout, network or aborted, or httpStatus 502 or 504, says). resent: a retry of a send made again without knowing whether an interrupted earlier send had delivered the message, answered for sure: that earlier send may have delivered it. resent_interrupted: such a resend that may itself have reached Microsoft: it, or the earlier interrupted send, may have delivered it. unresolved: the row ended (failed, expired, cancelled) with an interrupted send whose outcome is unknown: it may have delivered it. stopped_before_send, stopped_during_send (outcome unknown), stopped_looking_up (while looking up an interrupted send: nothing sent), stopped_before_resend (an interrupted send unresolved, before sending again): the worker holding the lease stopped. null: an entry recorded by a release before migration 0189",
      example: 'attempt',
    }),
  })
  .openapi('OutboxAttempt')

const JsonObject = z.record(z.string(), z.unknown())

export const OutboxDetail = OutboxItem.extend({
  message: JsonObject.nullable().openapi({
    description:
      "The normalised message as stored (enqueue_email); null for a template's row, which stores none (what it renders is rendered)",
  }),
  sourceRow: JsonObject.nullable().openapi({ description: 'The row a template trigger saw' }),
  rendered: RenderedMessage.nullable(),
  renderError: RenderErrorShape.nullable(),
  history: z.array(OutboxAttempt),
  mayHaveBeenDelivered: z.boolean().openapi({
    description:
      "Whether a send may have delivered the row, as the bulk filter's and the list's mayHaveBeenDelivered read it: sent; keeping an interrupted send's mark (sendStartedAt); or with a send held ambiguous_send in its history (held now, or retried since). False otherwise, as for a row cancelled before any send. True on a failed or cancelled row says: look for it in the mailbox's Sent Items before retrying it. The list's items do not carry it (a probe of each row's history a page): filter by it instead",
  }),
}).openapi('OutboxDetail')

export const OutboxList = z
  .object({
    items: z.array(OutboxItem),
    nextCursor: z.string().nullable().openapi({
      description:
        'Where the next page starts; null once the list has ended. A page filtered by tenant, a time window, lastErrorCode, mayHaveBeenDelivered or status=sent alone (no index holds such rows in id order) reads at most 20,000 rows of the outbox, so it may hold fewer rows than limit, even none, with a nextCursor: follow it until null',
    }),
  })
  .openapi('OutboxList')

export const ListQuery = withStorableText(
  strictQuery(
    {
      ...DB_PARAM,
      status: ListStatuses,
      tenant: TenantFilter,
      createdFrom: TimeBound.openapi({ description: 'created_at >= this' }),
      createdTo: TimeBound.openapi({ description: 'created_at < this (later than createdFrom)' }),
      sentFrom: TimeBound.openapi({ description: 'sent_at >= this' }),
      sentTo: TimeBound.openapi({ description: 'sent_at < this (later than sentFrom)' }),
      dedupeKey: z.string().min(1).optional(),
      correlationId: CorrelationIdFilter,
      lastErrorCode: z
        .string()
        .min(1)
        .optional()
        .openapi({ description: "The row's lastErrorCode (why it failed, or why it waits)" }),
      template: TemplateFilter,
      mayHaveBeenDelivered: DeliveredParam,
      order: ListOrderParam,
      limit: PageLimit,
      cursor: z
        .string()
        .optional()
        .openapi({ description: 'nextCursor of the previous page, in the same order' }),
    },
    {},
    ['status'],
  ).superRefine(windowsHoldTime),
)

const instantOrNull = (d: Date | null) => (d === null ? null : rfc3339Text(d))

export const toItemJson = (r: OutboxSummary): z.infer<typeof OutboxItem> => ({
  ...r,
  sendAt: rfc3339Text(r.sendAt),
  expiresAt: instantOrNull(r.expiresAt),
  createdAt: rfc3339Text(r.createdAt),
  sentAt: instantOrNull(r.sentAt),
  leaseExpiresAt: instantOrNull(r.leaseExpiresAt),
  sendStartedAt: instantOrNull(r.sendStartedAt),
  cancelRequestedAt: instantOrNull(r.cancelRequestedAt),
})

const toAttemptJson = (a: Attempt): z.infer<typeof OutboxAttempt> => ({
  ...a,
  startedAt: instantOrNull(a.startedAt),
  finishedAt: rfc3339Text(a.finishedAt),
})

export function toDetailJson(
  r: OutboxRecord,
  history: Attempt[],
  rendering: RowRendering,
  mayHaveBeenDelivered: boolean,
): z.infer<typeof OutboxDetail> {
  const { message, sourceRow, ...summary } = r
  return {
    ...toItemJson(summary),
    message: (message ?? null) as Record<string, unknown> | null,
    sourceRow: (sourceRow ?? null) as Record<string, unknown> | null,
    // A template's row stores no message: what it sends is rendered; a stored one's, its message.
    ...toRenderedJson(rendering, r.template === null ? 'message' : 'rendered'),
    history: history.map(toAttemptJson),
    mayHaveBeenDelivered,
  }
}
