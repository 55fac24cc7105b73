// POST /v1/outbox: enqueue an e-mail (Idempotency-Key replays, the token's tenant and senders, a Location).
import { createRoute, OpenAPIHono } from '@hono/zod-openapi'
import { AppError } from '../../errors.ts'
import { enqueueEmail } from '../../outbox/enqueue.ts'
import { enqueuedAlike } from '../../outbox/enqueue-replay.ts'
import { withStatementTimeout } from '../../outbox/statement-timeout.ts'
import { requireScope } from '../auth.ts'
import { BEARER_SECURITY } from '../bearer-security.ts'
import { type ApiDeps, type AppEnv, QUERY_TIMEOUT_MS } from '../context.ts'
import { ENQUEUE_BODY_SHAPE, enqueueHook } from '../enqueue-envelope.ts'
import { Enqueued, EnqueueHeaders, EnqueueRequest } from '../enqueue-schemas.ts'
import { checkEnqueuedSender } from '../enqueued-sender.ts'
import { withAsciiDomains } from '../idn-addresses.ts'
import { jsonResponse } from '../json-response.ts'
import { DbQuery } from '../outbox-schemas.ts'
import { JSON_BODY_PROBLEMS, problemResponse, V1_PROBLEMS } from '../problem-responses.ts'
import { selectDatabase } from '../select-database.ts'
import { utf8JsonBody } from '../utf8-body.ts'
import { validationHook } from '../validation-hook.ts'

export function enqueueRoutes(deps: ApiDeps) {
  const write = [requireScope('outbox:write'), selectDatabase(deps.databases)]

  const enqueue = createRoute({
    method: 'post',
    path: '/v1/outbox',
    operationId: 'enqueue',
    tags: ['outbox'],
    summary: 'Enqueue an e-mail (validated exactly as mailer.enqueue_email)',
    security: BEARER_SECURITY,
    // After the scope and ?db= checks, so their answers come first; before the body is read.
    middleware: [...write, utf8JsonBody(ENQUEUE_BODY_SHAPE)],
    request: {
      query: DbQuery,
      headers: EnqueueHeaders,
      body: { required: true, content: { 'application/json': { schema: EnqueueRequest } } },
    },
    responses: {
      200: jsonResponse(
        Enqueued,
        'A replay: the Idempotency-Key already named a row enqueued with this message and options (sendAt aside), or options.dedupeKey (without the header) named a row: its id',
      ),
      201: {
        ...jsonResponse(Enqueued, 'Enqueued'),
        headers: {
          Location: {
            description:
              'The new row: /v1/outbox/{id}, with ?db= when the request named a database or several are configured',
            required: true,
            schema: { type: 'string' as const },
          },
        },
      },
      ...V1_PROBLEMS,
      ...JSON_BODY_PROBLEMS,
      403: {
        ...V1_PROBLEMS[403],
        ...problemResponse(
          "The token lacks outbox:write, names a tenant other than its tenant claim, or its db claim names no database this service serves (forbidden); or message.from names a mailbox MAIL_FROM_ALLOWED or the token's senders claim does not list (sender_not_allowed): nothing was enqueued",
          ['forbidden', 'sender_not_allowed'],
        ),
      },
      422: problemResponse(
        'The Idempotency-Key already names a row enqueued with another message or other options (idempotency_key_reused): nothing was enqueued; a new message needs a new key',
        ['idempotency_key_reused'],
      ),
    },
  })

  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook }).openapi(
    enqueue,
    async (c) => {
      const body = c.req.valid('json')
      const key = c.req.valid('header')['idempotency-key']
      // An option given null is not given (enqueue-schemas.ts): dropped before it is compared with
      // the key or the token's tenant, and before enqueue_email, which refuses a null tenant.
      const options: Record<string, unknown> = Object.fromEntries(
        Object.entries(body.options ?? {}).filter(([, v]) => v !== null),
      )
      if (key !== undefined) {
        if (options.dedupeKey !== undefined && options.dedupeKey !== key) {
          throw new AppError('validation_failed', 'Idempotency-Key and options.dedupeKey differ', {
            errors: [
              { path: 'options.dedupeKey', message: 'differs from the Idempotency-Key header' },
            ],
          })
        }
        options.dedupeKey = key
      }
      const tenant = c.get('principal').tenant
      if (tenant !== null) {
        if (options.tenant !== undefined && options.tenant !== tenant) {
          throw new AppError('forbidden', 'the token may only enqueue for its own tenant')
        }
        options.tenant = tenant
      }
      const message = withAsciiDomains(body.message)
      checkEnqueuedSender(message, deps.allowedSenders ?? null, c.get('principal'))
      const input = { message, options }
      const result = await withStatementTimeout(
        c.get('database').db,
        QUERY_TIMEOUT_MS,
        async (trx) => {
          const r = await enqueueEmail(trx, input)
          // The header replays a request (a lost answer): under the key of another request it would
          // answer that request's id and silently drop this message. options.dedupeKey alone keeps
          // enqueue_email's rule, a business key whose repeat returns the row whatever it holds.
          if (key !== undefined && !r.created && !(await enqueuedAlike(trx, r.id, input))) {
            throw new AppError(
              'idempotency_key_reused',
              `the Idempotency-Key already names outbox row ${r.id}, enqueued with another message or other options; a new message needs a new key`,
            )
          }
          return r
        },
      )
      c.get('log').info(result.created ? 'enqueued' : 'enqueue deduplicated', {
        outboxId: result.id,
      })
      if (!result.created) return c.json({ id: result.id }, 200)
      // RFC 9110 15.3.2: without it the created resource would be the target URI, /v1/outbox. With
      // several databases it names the row's, asked or not (a token whose db claim implied it): the
      // row route of a token reaching more than one needs it.
      const db =
        c.req.valid('query').db || (deps.databases.length > 1 ? c.get('database').name : '')
      const location = `/v1/outbox/${result.id}${db ? `?db=${encodeURIComponent(db)}` : ''}`
      return c.json({ id: result.id }, 201, { Location: location })
    },
    // Cast: a hook's own type takes part in inferring the handler's input (its body turned unknown).
    enqueueHook as never,
  )
}
