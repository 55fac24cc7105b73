// GET /v1/outbox's paging and ordering parameters (limit, status, order): what each accepts and how a wrong one is named.
import { z } from '@hono/zod-openapi'
import { OUTBOX_STATUSES } from '../db/schema.ts'

/**
 * `?limit=`, in decimal digits as the document's integer says: Number() alone would read `1e2`,
 * `0x10`, `+5`, ` 5` and `050` too (a value no client built from the document sends, accepted).
 * Digits alone are a whole number already: zod's int() would add its own bound, 2^53 - 1, a second
 * problem beside max(200) for a long one.
 */
export const PageLimit = z
  .preprocess(
    (v) => (typeof v === 'string' && !/^(0|[1-9][0-9]*)$/.test(v) ? Number.NaN : v),
    z.coerce
      .number({
        error: (iss) =>
          iss.code === 'invalid_type'
            ? 'must be a whole number from 1 to 200 in decimal digits, no sign, space or leading zero'
            : undefined,
      })
      .min(1)
      .max(200),
  )
  .default(50)
  .openapi({ type: 'integer', minimum: 1, maximum: 200, default: 50, example: 50 })

/**
 * `?status=`, repeated for several (`status=failed&status=cancelled`: OpenAPI's form style, as a
 * generated client sends an array, and the bulk filters' list), each value checked. A comma in one
 * value is named with the repeated form, not "Invalid option".
 */
export const ListStatuses = z
  .preprocess(
    (v) => (typeof v === 'string' ? [v] : v),
    z
      .array(
        z.enum(OUTBOX_STATUSES, {
          error: (iss) =>
            typeof iss.input === 'string' && iss.input.includes(',')
              ? `one status per status=, repeated for several: status=${iss.input
                  .split(',')
                  .map((x) => x.trim())
                  .join('&status=')}`
              : `must be one of ${OUTBOX_STATUSES.join(', ')}`,
        }),
      )
      .transform((a) => [...new Set(a)]),
  )
  .optional()
  .openapi({
    type: 'array',
    items: { $ref: '#/components/schemas/OutboxStatus' },
    description:
      'Rows in any of these statuses; repeat for several: status=failed&status=cancelled',
    param: { style: 'form', explode: true },
  })

export const ListOrderParam = z.enum(['newest', 'oldest']).default('newest').openapi({
  description:
    'newest: by id descending; oldest: by id ascending (the oldest stuck row first). A cursor continues only the order that returned it. Oldest first, a page never passes a row committed after rows with higher ids: it waits for the transactions writing outbox rows as it starts to end (a 503 with Retry-After when one stays open past 2 s)',
  example: 'oldest',
})

/**
 * `?mayHaveBeenDelivered=`, `true` or `false` as the bulk filter's boolean (delivery-possible.ts):
 * any other word, `1` or `TRUE` included, is refused rather than read as one of them.
 */
export const DeliveredParam = z
  .preprocess(
    (v) => (v === 'true' ? true : v === 'false' ? false : v),
    z.boolean({ error: 'must be true or false' }),
  )
  .optional()
  // Declared as the two words a query carries: a client sends the text, not a JSON boolean.
  .openapi({
    type: 'string',
    enum: ['true', 'false'],
    description:
      "false: the rows no send may have delivered; true: those one may have (sent; keeping an interrupted send's mark, `sendStartedAt`; or held `ambiguous_send`, now or before a retry), to look for in the mailbox's Sent Items before retrying them. Each row read that is neither sent nor marked and has a lastErrorCode costs one probe of its history",
  })
