// A bulk retry loop's opaque cursor: where its last call stopped and the highest id when it began.
import { AppError } from '../errors.ts'
import type { RetryLoopSpan } from '../outbox/bulk-requeue.ts'
import { isOutboxId } from './outbox-schemas.ts'

// Not a list's cursor ('o1:', 'a1:', cursor.ts): a position alone, which would bound nothing.
const PREFIX = 'r1:'
const LIST_PREFIXES = ['o1:', 'a1:']

export const encodeRetryCursor = (span: RetryLoopSpan) =>
  Buffer.from(`${PREFIX}${span.after}:${span.upTo}`).toString('base64url')

const refused = (message: string) =>
  new AppError('validation_failed', `cursor: ${message}`, {
    errors: [{ path: 'cursor', message }],
  })

const NOT_OURS =
  "is not a cursor this API returned: pass back a bulk retry's nextCursor unchanged, or leave cursor out to begin a loop"

/** The span a bulk retry's nextCursor names; anything else is refused, a list's cursor by name. */
export function decodeRetryCursor(cursor: string | undefined): RetryLoopSpan | null {
  if (cursor === undefined) return null
  const text = Buffer.from(cursor, 'base64url').toString('utf8')
  if (LIST_PREFIXES.some((p) => text.startsWith(p) && isOutboxId(text.slice(p.length)))) {
    throw refused(
      "is a list's cursor (GET /v1/outbox's nextCursor), not a bulk retry's: pass back the nextCursor a bulk retry answered, or leave cursor out to begin a loop",
    )
  }
  const [after = '', upTo = '', ...rest] = text.startsWith(PREFIX)
    ? text.slice(PREFIX.length).split(':')
    : []
  // A cursor this API wrote stops at or below its bound; base64url's decoder skips what is not
  // base64url, so the cursor is checked to be the very text its span encodes.
  const ours =
    rest.length === 0 &&
    isOutboxId(after) &&
    isOutboxId(upTo) &&
    BigInt(after) <= BigInt(upTo) &&
    encodeRetryCursor({ after, upTo }) === cursor
  if (!ours) throw refused(NOT_OURS)
  return { after, upTo }
}
