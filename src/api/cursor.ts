// Opaque list cursors: clients pass nextCursor back unchanged and never build one.
import { AppError } from '../errors.ts'
import type { ListOrder } from '../outbox/inspect.ts'
import { isOutboxId } from './outbox-id.ts'

// A cursor names its order: an id is a position only in one direction (the rows below it newest
// first, above it oldest first), so one given with the other order would answer a wrong page.
// 'o1:' is the newest-first cursor every release before order= returned: those keep working.
const PREFIX: Record<ListOrder, string> = { newest: 'o1:', oldest: 'a1:' }

export const encodeCursor = (order: ListOrder, position: string) =>
  Buffer.from(PREFIX[order] + position).toString('base64url')

const refused = (message: string) =>
  new AppError('validation_failed', `cursor: ${message}`, {
    errors: [{ path: 'cursor', message }],
  })

/** The id a cursor of `order` names; a cursor of the other order is refused, naming the one it belongs to. */
export function decodeCursor(cursor: string | undefined, order: ListOrder): string | undefined {
  if (cursor === undefined) return undefined
  const text = Buffer.from(cursor, 'base64url').toString('utf8')
  for (const [other, prefix] of Object.entries(PREFIX)) {
    if (other === order || !text.startsWith(prefix)) continue
    if (!isOutboxId(text.slice(prefix.length))) break
    throw refused(
      `continues a list in order=${other}, not order=${order}: give it with order=${other}, or leave cursor out to start order=${order} at its first page`,
    )
  }
  const id = text.startsWith(PREFIX[order]) ? text.slice(PREFIX[order].length) : ''
  if (!isOutboxId(id)) throw refused('is not a cursor this API returned')
  return id
}
