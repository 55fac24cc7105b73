// Wire shape of POST /v1/outbox: the envelope and its options (the message's own shape: message-schema.ts).
// mailer.enqueue_email validates the content, so objects are loose (unknown keys reach Postgres,
// which names them) and nothing is stricter than SQL.
import { z } from '@hono/zod-openapi'
import { CONTROL_CHARACTER_MESSAGE } from '../outbox/header-text.ts'
import { CLOSED, Message, NO_CONTROL_CHARACTER } from './message-schema.ts'
import { withStorableText } from './storable-text.ts'
import { TIMESTAMP_WITH_ZONE } from './time-bound.ts'
import { closedKeys } from './unknown-keys.ts'

// A whole number of any size: mailer.enqueue_email refuses one outside the option's range with
// that range; zod's int() named its own bound, 2^53 - 1, for a number past it.
const WholeNumber = z.number().refine(Number.isInteger, 'must be a whole number')

// mailer.check_options's limits (sql/0015), in the document only: SQL stays the one validator and
// names the field; a client generated from the document learns them before sending. Each option
// takes null as not given, as a message field does (the route drops it before SQL, whose
// check_options takes null for sendAt and expiresAt alone).

const EnqueueOptions = z
  .looseObject({
    tenant: z
      .string()
      .nullable()
      .optional()
      .openapi({ pattern: '^[A-Za-z0-9_.:-]{1,200}$', description: 'Default `default`' }),
    dedupeKey: z
      .string()
      .nullable()
      .optional()
      .openapi({ minLength: 1, maxLength: 500, description: 'Or the Idempotency-Key header' }),
    // enqueue_email takes null for either as not given: due now, never expires.
    sendAt: z
      .string()
      .nullable()
      .optional()
      .openapi({ pattern: TIMESTAMP_WITH_ZONE, example: '2030-01-01T09:00:00Z' }),
    expiresAt: z.string().nullable().optional().openapi({
      pattern: TIMESTAMP_WITH_ZONE,
      description:
        'Later than sendAt and than now (a repeat of a request whose row exists is answered with it, whatever the time)',
    }),
    priority: WholeNumber.nullable()
      .optional()
      .openapi({
        type: ['integer', 'null'],
        minimum: -100,
        maximum: 100,
        description: '-100 (first) .. 100 (last)',
      }),
    maxAttempts: WholeNumber.nullable()
      .optional()
      .openapi({ type: ['integer', 'null'], minimum: 1, maximum: 100 }),
    correlationId: z
      .string()
      .regex(NO_CONTROL_CHARACTER, CONTROL_CHARACTER_MESSAGE)
      .nullable()
      .optional()
      .openapi({
        minLength: 1,
        maxLength: 200,
        description:
          'Your id for the message: X-Correlation-Id, and GET /v1/outbox?correlationId=; no control character (U+0001-U+001F, U+007F)',
      }),
  })
  .openapi('EnqueueOptions', CLOSED)

// A message's field or an option beside "message" is told where it belongs. Options null are
// none, as a message field's null is no value and enqueue_email takes NULL options as '{}': what a
// client generated from this document sends for options it leaves unset (Jackson writes null).
export const EnqueueRequest = withStorableText(
  z.strictObject(
    {
      message: Message,
      options: EnqueueOptions.nullable().optional(),
    },
    closedKeys('a key of the body', ['message', 'options'], {
      message: Object.keys(Message.shape),
      options: Object.keys(EnqueueOptions.shape),
    }),
  ),
).openapi('EnqueueRequest')

export { EnqueueHeaders } from './idempotency-key-header.ts'

export const Enqueued = z.object({ id: z.string().openapi({ example: '42' }) }).openapi('Enqueued')

/** The fields of a message: in a body without its envelope, they are named as belonging inside it. */
export const MESSAGE_FIELDS: ReadonlySet<string> = new Set(Object.keys(Message.shape))
