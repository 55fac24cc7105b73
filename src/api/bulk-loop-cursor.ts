// A bulk cancel or retry loop's opaque cursor: where its last call stopped and the highest id when it began.
import { AppError } from '../errors.ts'
import type { BulkLoopSpan } from '../outbox/bulk-loop-span.ts'
import { isOutboxId } from './outbox-id.ts'

export type BulkAction = 'cancel' | 'retry'

// Not a list's cursor ('o1:', 'a1:', cursor.ts): a position alone, which would bound nothing. Nor
// the other action's: its loop read other rows than this one's.
const PREFIX: Record<BulkAction, string> = { retry: 'r1:', cancel: 'c1:' }
const OTHER: Record<BulkAction, BulkAction> = { retry: 'cancel', cancel: 'retry' }
const LIST_PREFIXES = ['o1:', 'a1:']

export const encodeLoopCursor = (action: BulkAction, span: BulkLoopSpan) =>
  Buffer.from(`${PREFIX[action]}${span.after}:${span.upTo}`).toString('base64url')

const refused = (message: string) =>
  new AppError('validation_failed', `cursor: ${message}`, {
    errors: [{ path: 'cursor', message }],
  })

/** The span of `cursor` if it is a nextCursor of `action` this API wrote, else null. */
function spanOf(action: BulkAction, cursor: string, text: string): BulkLoopSpan | null {
  const [after = '', upTo = '', ...rest] = text.startsWith(PREFIX[action])
    ? text.slice(PREFIX[action].length).split(':')
    : []
  // A cursor this API wrote stops at or below its bound; base64url's decoder skips what is not
  // base64url, so the cursor is checked to be the very text its span encodes.
  const ours =
    rest.length === 0 &&
    isOutboxId(after) &&
    isOutboxId(upTo) &&
    BigInt(after) <= BigInt(upTo) &&
    encodeLoopCursor(action, { after, upTo }) === cursor
  return ours ? { after, upTo } : null
}

/**
 * The span a bulk `action`'s nextCursor names; anything else is refused, a list's cursor and the
 * other bulk action's by name.
 */
export function decodeLoopCursor(
  action: BulkAction,
  cursor: string | undefined,
): BulkLoopSpan | null {
  if (cursor === undefined) return null
  const text = Buffer.from(cursor, 'base64url').toString('utf8')
  const again = `pass back the nextCursor a bulk ${action} answered, or leave cursor out to begin a loop`
  if (LIST_PREFIXES.some((p) => text.startsWith(p) && isOutboxId(text.slice(p.length)))) {
    throw refused(
      `is a list's cursor (GET /v1/outbox's nextCursor), not a bulk ${action}'s: ${again}`,
    )
  }
  const other = OTHER[action]
  if (spanOf(other, cursor, text) !== null) {
    throw refused(
      `is a bulk ${other}'s cursor (POST /v1/outbox/${other}'s nextCursor), not a bulk ${action}'s: ${again}`,
    )
  }
  const span = spanOf(action, cursor, text)
  if (span === null) {
    throw refused(
      `is not a cursor this API returned: pass back a bulk ${action}'s nextCursor unchanged, or leave cursor out to begin a loop`,
    )
  }
  return span
}
