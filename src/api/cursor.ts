// Opaque list cursors: clients pass nextCursor back unchanged and never build one.
import { AppError } from '../errors.ts'
import { isOutboxId } from './outbox-schemas.ts'

const PREFIX = 'o1:'

export const encodeCursor = (beforeId: string) =>
  Buffer.from(PREFIX + beforeId).toString('base64url')

export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined
  const text = Buffer.from(cursor, 'base64url').toString('utf8')
  const id = text.startsWith(PREFIX) ? text.slice(PREFIX.length) : ''
  if (!isOutboxId(id)) {
    throw new AppError('validation_failed', 'cursor: is not a cursor this API returned', {
      errors: [{ path: 'cursor', message: 'is not a cursor this API returned' }],
    })
  }
  return id
}
