// /v1/outbox: list (filters, keyset pages, no bodies) and one row with its history; enqueue is enqueue.ts.
import { createRoute, OpenAPIHono } from '@hono/zod-openapi'
import { systemClock } from '../../clock.ts'
import { AppError } from '../../errors.ts'
import { listOutbox } from '../../outbox/inspect.ts'
import { findOutboxRowWithTemplate, listAttempts } from '../../outbox/outbox-row.ts'
import { renderRow } from '../../outbox/row-rendering.ts'
import { withStatementTimeout } from '../../outbox/statement-timeout.ts'
import { requireScope } from '../auth.ts'
import { BEARER_SECURITY } from '../bearer-security.ts'
import { type ApiDeps, type AppEnv, QUERY_TIMEOUT_MS } from '../context.ts'
import { decodeCursor, encodeCursor } from '../cursor.ts'
import { jsonResponse } from '../json-response.ts'
import { IdParam } from '../outbox-id.ts'
import {
  DbQuery,
  ListQuery,
  OutboxDetail,
  OutboxList,
  toDetailJson,
  toItemJson,
} from '../outbox-schemas.ts'
import { ROW_PROBLEMS, V1_PROBLEMS } from '../problem-responses.ts'
import { selectDatabase } from '../select-database.ts'
import { validationHook } from '../validation-hook.ts'

export function outboxRoutes(deps: ApiDeps) {
  const clock = deps.clock ?? systemClock
  const db = selectDatabase(deps.databases)
  const read = [requireScope('outbox:read'), db]
  // One row is rendered as its worker renders it: with the sender settings the workers are given.
  const settings = {
    mailFrom: deps.mailFrom ?? null,
    allowedSenders: deps.allowedSenders ?? null,
    mailFromUnknown: deps.mailFromUnknown ?? null,
  }

  const list = createRoute({
    method: 'get',
    path: '/v1/outbox',
    operationId: 'listRows',
    tags: ['outbox'],
    summary:
      'List outbox rows, newest first or with order=oldest oldest first (bodies omitted, no row rendered)',
    security: BEARER_SECURITY,
    middleware: read,
    request: { query: ListQuery },
    responses: {
      200: jsonResponse(
        OutboxList,
        'One page (maybe short, even empty, while nextCursor is not null); pass nextCursor as ?cursor=',
      ),
      ...V1_PROBLEMS,
      503: {
        ...V1_PROBLEMS[503],
        description: `${V1_PROBLEMS[503].description}; or, oldest first (order=oldest), a transaction writing outbox rows has stayed open past 2 s, which the page waits for so as not to pass a row it may still commit (database_unavailable, Retry-After 1: repeat it, or list newest first)`,
      },
    },
  })

  const get = createRoute({
    method: 'get',
    path: '/v1/outbox/{id}',
    operationId: 'getRow',
    tags: ['outbox'],
    summary:
      'One row with its message, what it renders to (rendered) or why it cannot (renderError), and its attempt history',
    security: BEARER_SECURITY,
    middleware: read,
    request: { params: IdParam, query: DbQuery },
    responses: { 200: jsonResponse(OutboxDetail, 'The row'), ...V1_PROBLEMS, ...ROW_PROBLEMS },
  })

  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
    .openapi(list, async (c) => {
      const q = c.req.valid('query')
      const after = decodeCursor(q.cursor, q.order)
      const filter = {
        status: q.status,
        tenant: q.tenant,
        createdFrom: q.createdFrom,
        createdTo: q.createdTo,
        sentFrom: q.sentFrom,
        sentTo: q.sentTo,
        dedupeKey: q.dedupeKey,
        correlationId: q.correlationId,
        lastErrorCode: q.lastErrorCode,
        template: q.template,
        mayHaveBeenDelivered: q.mayHaveBeenDelivered,
      }
      const page = await withStatementTimeout(c.get('database').db, QUERY_TIMEOUT_MS, (trx) =>
        listOutbox(
          trx,
          filter,
          { limit: q.limit, order: q.order, after },
          c.get('principal').tenant,
          clock,
        ),
      )
      const nextCursor = page.next ? encodeCursor(q.order, page.next) : null
      return c.json({ items: page.items.map(toItemJson), nextCursor }, 200)
    })
    .openapi(get, async (c) => {
      const { id } = c.req.valid('param')
      const found = await withStatementTimeout(
        c.get('database').db,
        QUERY_TIMEOUT_MS,
        async (trx) => {
          const read = await findOutboxRowWithTemplate(trx, id, c.get('principal').tenant)
          if (!read) return null
          const { row, template, mayHaveBeenDelivered } = read
          const history = await listAttempts(trx, id)
          const templates = new Map(template ? [[template.name, template]] : [])
          return { row, history, templates, mayHaveBeenDelivered }
        },
      )
      if (!found) throw new AppError('not_found', `outbox row ${id} does not exist`)
      const { name, db: rowDb } = c.get('database')
      const rendering = await renderRow(
        { db: rowDb, dbName: name, log: c.get('log') },
        found.row,
        found.templates,
        settings,
        c.get('principal').tenant !== null,
      )
      return c.json(
        toDetailJson(found.row, found.history, rendering, found.mayHaveBeenDelivered),
        200,
      )
    })
}
