// A POST /v1/outbox body without its {"message", "options"} envelope: one problem naming message, not zod's two.
import type { ZodError } from 'zod'
import { AppError } from '../errors.ts'
import { MESSAGE_FIELDS } from './enqueue-schemas.ts'
import { validationHook } from './validation-hook.ts'

/** The enqueue body's shape, as its refusals name it. */
export const ENQUEUE_BODY_SHAPE = '{"message": {...}, "options": {...}} (options optional)'
const SHAPE = `the body must be ${ENQUEUE_BODY_SHAPE}`

/**
 * The enqueue route's validation hook. A JSON object with no "message" (the message's own fields
 * at the top, most likely) is said as the envelope it lacks; zod named a missing object and each
 * unrecognised key apart. Anything else is validationHook's.
 */
export function enqueueHook(result: {
  success: boolean
  error?: ZodError
  data?: unknown
  target?: string
}): undefined {
  const body = result.data
  if (
    !result.success &&
    result.target === 'json' &&
    typeof body === 'object' &&
    body !== null &&
    !Array.isArray(body) &&
    !('message' in body)
  ) {
    // Only the message's own fields are echoed: the client's other keys could be anything.
    const inside = Object.keys(body).filter((k) => MESSAGE_FIELDS.has(k))
    const move = inside.length
      ? `; ${inside.map((k) => `"${k}"`).join(', ')} belong inside "message"`
      : ''
    const message = `is required: ${SHAPE}${move}`
    throw new AppError('validation_failed', `message: ${message}`, {
      errors: [{ path: 'message', message }],
    })
  }
  return validationHook(result)
}
