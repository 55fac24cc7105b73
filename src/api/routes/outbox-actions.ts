// Steering rows: cancel and retry, one by id or in bulk by filter (with a dry run).
import { createRoute, OpenAPIHono } from '@hono/zod-openapi'
import { cancelLoopStep, countCancellable } from '../../outbox/bulk-cancel.ts'
import { countRequeueable, requeueLoopStep } from '../../outbox/bulk-requeue.ts'
import { cancelOutbox } from '../../outbox/cancel.ts'
import { requeueOutbox } from '../../outbox/requeue.ts'
import { withStatementTimeout } from '../../outbox/statement-timeout.ts'
import { requireScope } from '../auth.ts'
import { BEARER_SECURITY } from '../bearer-security.ts'
import { runBulk } from '../bulk-run.ts'
import {
  BULK_BODY_SHAPE,
  BulkCancelRequest,
  BulkResult,
  BulkRetryRequest,
} from '../bulk-schemas.ts'
import { type ApiDeps, type AppEnv, QUERY_TIMEOUT_MS } from '../context.ts'
import { jsonResponse } from '../json-response.ts'
import { IdParam } from '../outbox-id.ts'
import { DbQuery, OutboxItem, toItemJson } from '../outbox-schemas.ts'
import {
  BODY_PROBLEMS,
  JSON_BODY_PROBLEMS,
  problemResponse,
  ROW_PROBLEMS,
  V1_PROBLEMS,
} from '../problem-responses.ts'
import { noRowActionBody } from '../row-action-body.ts'
import { selectDatabase } from '../select-database.ts'
import { utf8JsonBody } from '../utf8-body.ts'
import { validationHook } from '../validation-hook.ts'

const conflict = problemResponse('The row is in a state that does not allow this (conflict)', [
  'conflict',
])

/**
 * The document's body of a single-row action: none, {} or null. A plain schema, not zod's:
 * zod-openapi would validate it, refusing an empty body sent as application/json or as a form
 * (curl -d '').
 */
const noBody = (action: 'cancel' | 'retry') => ({
  required: false,
  description: `None, {} or null: any other body is a 400 (to ${action} by filter, POST /v1/outbox/${action})`,
  content: {
    'application/json': {
      schema: {
        type: ['object' as const, 'null' as const],
        maxProperties: 0,
        additionalProperties: false,
      },
    },
  },
})

export function outboxActionRoutes(deps: ApiDeps) {
  const middleware = [requireScope('outbox:write'), selectDatabase(deps.databases)]
  // The bulk routes read a JSON body; the single-row ones refuse any but none, an empty one, {} or null.
  const withBody = [...middleware, utf8JsonBody(BULK_BODY_SHAPE)]

  const cancel = createRoute({
    method: 'post',
    path: '/v1/outbox/{id}/cancel',
    operationId: 'cancelRow',
    tags: ['outbox'],
    summary:
      'Cancel a pending row (200), or record the cancel for a worker to settle (202): a sending row whose send has not started, or a pending row an interrupted earlier send may have delivered',
    security: BEARER_SECURITY,
    middleware: [...middleware, noRowActionBody('cancel')],
    request: { params: IdParam, query: DbQuery, body: noBody('cancel') },
    responses: {
      200: jsonResponse(OutboxItem, 'Cancelled'),
      202: jsonResponse(
        OutboxItem,
        'The cancel is recorded (cancelRequestedAt) for a worker to settle. A claimed row whose send has not started: its worker cancels it before sending. A pending row that keeps an interrupted earlier send (which may have delivered it): left pending and due now; the worker that claims it never sends it again but looks that send up in the mailbox (GRAPH_MAILBOX_LOOKUP): found, sent (its history says the cancel came after the delivery); not found past the lookup grace, cancelled as not sent; too early, it waits and looks again; the lookup unavailable or refused, or lookups off, cancelled, its history saying the message may have gone. Cancelled again while it waits, such a row is answered as it is (its due time not moved)',
      ),
      ...V1_PROBLEMS,
      ...ROW_PROBLEMS,
      ...BODY_PROBLEMS,
      409: problemResponse(
        'The row is sent, failed or cancelled (conflict), or its send has already started (send_started): nothing was recorded',
        ['conflict', 'send_started'],
      ),
    },
  })

  const retry = createRoute({
    method: 'post',
    path: '/v1/outbox/{id}/retry',
    operationId: 'retryRow',
    tags: ['outbox'],
    summary:
      'Requeue a failed or cancelled row: pending, due now or at its later sendAt, attempts reset (last error kept)',
    security: BEARER_SECURITY,
    middleware: [...middleware, noRowActionBody('retry')],
    request: { params: IdParam, query: DbQuery, body: noBody('retry') },
    responses: {
      200: jsonResponse(OutboxItem, 'Requeued'),
      ...V1_PROBLEMS,
      ...ROW_PROBLEMS,
      ...BODY_PROBLEMS,
      403: {
        ...V1_PROBLEMS[403],
        ...problemResponse(
          "The token lacks outbox:write, or its db claim names no database this service serves (forbidden); or the row is sent from a mailbox the token's senders claim does not list, or one only its rendering can say (sender_not_allowed): nothing was requeued",
          ['forbidden', 'sender_not_allowed'],
        ),
      },
      409: conflict,
    },
  })

  const bulkCancel = createRoute({
    method: 'post',
    path: '/v1/outbox/cancel',
    operationId: 'cancelRows',
    tags: ['outbox'],
    summary:
      'Cancel the pending rows, and the sending rows whose send has not started, that match a filter: each as the single cancel does (cancelled, or cancel_requested for a worker to settle), counted in cancelled and cancelRequested; up to `limit` a call: loop while `more`, passing back `nextCursor` as `cursor` so that the loop ends and cancels no row enqueued after it began',
    security: BEARER_SECURITY,
    middleware: withBody,
    request: {
      query: DbQuery,
      body: { required: true, content: { 'application/json': { schema: BulkCancelRequest } } },
    },
    responses: {
      200: jsonResponse(BulkResult, 'Per-row results (or the count, for a dry run)'),
      ...V1_PROBLEMS,
      ...JSON_BODY_PROBLEMS,
    },
  })

  const bulkRetry = createRoute({
    method: 'post',
    path: '/v1/outbox/retry',
    operationId: 'retryRows',
    tags: ['outbox'],
    summary:
      'Requeue the failed and cancelled rows that match a filter (expired rows are left), up to `limit` a call: loop while `more`, passing back `nextCursor` as `cursor` so that each row is requeued once and the loop ends',
    security: BEARER_SECURITY,
    middleware: withBody,
    request: {
      query: DbQuery,
      body: { required: true, content: { 'application/json': { schema: BulkRetryRequest } } },
    },
    responses: {
      200: jsonResponse(BulkResult, 'Per-row results (or the count, for a dry run)'),
      ...V1_PROBLEMS,
      ...JSON_BODY_PROBLEMS,
    },
  })

  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
    .openapi(cancel, async (c) => {
      const { id } = c.req.valid('param')
      const r = await withStatementTimeout(c.get('database').db, QUERY_TIMEOUT_MS, (trx) =>
        cancelOutbox(trx, id, c.get('principal').tenant),
      )
      c.get('log').info('cancel', { outboxId: id, outcome: r.outcome })
      return r.outcome === 'cancelled'
        ? c.json(toItemJson(r.row), 200)
        : c.json(toItemJson(r.row), 202)
    })
    .openapi(retry, async (c) => {
      const { id } = c.req.valid('param')
      const { tenant, senders } = c.get('principal')
      const row = await withStatementTimeout(c.get('database').db, QUERY_TIMEOUT_MS, (trx) =>
        requeueOutbox(trx, id, tenant, senders),
      )
      c.get('log').info('retry', { outboxId: id })
      return c.json(toItemJson(row), 200)
    })
    .openapi(bulkCancel, async (c) =>
      c.json(
        await runBulk(c, c.req.valid('json'), 'cancel', countCancellable, cancelLoopStep),
        200,
      ),
    )
    .openapi(bulkRetry, async (c) => {
      // A token confined to sender mailboxes retries its rows only, and is told how many it left.
      const senders = c.get('principal').senders
      return c.json(
        await runBulk(
          c,
          c.req.valid('json'),
          'retry',
          (db, f, tenant, span) => countRequeueable(db, f, tenant, senders, true, span),
          (db, f, tenant, o) => requeueLoopStep(db, f, tenant, { ...o, senders }),
          senders === null
            ? undefined
            : (db, f, tenant, span) => countRequeueable(db, f, tenant, senders, false, span),
        ),
        200,
      )
    })
}
