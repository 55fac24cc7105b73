// POST /v1/outbox's Idempotency-Key header: one value of printable ASCII, as it becomes options.dedupeKey.
import { z } from '@hono/zod-openapi'
import { takesOneValue } from './strict-query.ts'

// Fetch joins a header given twice into one value with ", ", which would be taken as one key: a
// key holding ", " cannot be told from that, and is refused as a repeated header is.
const JOINED = ', '
const KEY_JOINED = 'a header given twice arrives joined by ", ", so a key holds no ", "'

// An empty header names no key: refused, saying what a key is and that the header may be left out.
const KEY_EMPTY =
  'must not be empty: a key is 1 to 500 printable ASCII characters (or send no Idempotency-Key)'

// A header carries bytes, which the server reads as Latin-1: a key sent as UTF-8 would be stored
// as what its bytes read as there ("Ð·Ð°Ðº…" for "зак…"), never matched by ?dedupeKey= or by an
// SQL caller's dedupeKey. Printable ASCII only (the IETF draft's sf-string characters).
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/
const KEY_ASCII =
  'must be printable ASCII (a header carries no other text faithfully); put another key in options.dedupeKey'

export const EnqueueHeaders = z.object({
  'idempotency-key': z
    .string()
    .min(1, KEY_EMPTY)
    .max(500)
    .regex(PRINTABLE_ASCII, KEY_ASCII)
    .superRefine((key, ctx) => {
      if (!key.includes(JOINED)) return
      ctx.addIssue({
        code: 'custom',
        message: takesOneValue(key.split(JOINED).length, KEY_JOINED),
        input: key,
      })
    })
    .optional()
    .openapi({
      description: `Becomes options.dedupeKey: a replay of the same request answers 200 with the same id, another request under it 422. One value of printable ASCII; ${KEY_JOINED} (options.dedupeKey may hold either)`,
    }),
})
