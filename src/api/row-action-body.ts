// A single-row action (cancel, retry by id) takes no body: none, an empty one, {} or null act; any other is a 400 naming the route's shape, and the bulk route for a filter.
import { createMiddleware } from 'hono/factory'
import { AppError } from '../errors.ts'
import { BulkCancelRequest } from './bulk-schemas.ts'
import type { AppEnv } from './context.ts'

// The bulk routes' keys and their filter's criteria: a body holding one meant the bulk route.
const BULK_KEYS = new Set([
  ...Object.keys(BulkCancelRequest.shape),
  ...Object.keys(BulkCancelRequest.shape.filter.shape),
])

/**
 * The body's JSON value; undefined for none (empty or white space, or JSON's null: what a client's
 * serializer writes for no payload, taken before the refusal came), NOT_JSON for text that is no JSON.
 */
function bodyValue(text: string): unknown {
  if (text.trim() === '') return undefined
  try {
    return JSON.parse(text) ?? undefined
  } catch {
    return NOT_JSON
  }
}
const NOT_JSON = Symbol('not JSON')

/**
 * Runs before the route `POST /v1/outbox/{id}/<action>`. A client sending `{"reason": ...}` or a
 * bulk filter here was told 200 for an action that ignored what it sent: refused instead, before
 * anything is done. Whatever its content type, a body of no bytes (curl -d '') is none.
 */
export const noRowActionBody = (action: 'cancel' | 'retry') => {
  const shape = `POST /v1/outbox/{id}/${action} takes no body`
  return createMiddleware<AppEnv>(async (c, next) => {
    // At most the route's body limit (body-limits.ts); bytes that are not UTF-8 read as no JSON.
    const value = bodyValue(await c.req.text())
    if (value === undefined) return next()
    const isObject = typeof value === 'object' && value !== null && !Array.isArray(value)
    if (isObject && Object.keys(value).length === 0) return next()
    let errors: { path: string; message: string }[]
    if (isObject) {
      const keys = Object.keys(value)
      const bulk = keys.some((k) => BULK_KEYS.has(k))
        ? `; to ${action} the rows a filter matches, POST /v1/outbox/${action} {"filter": {...}}`
        : ''
      const message = `is not taken: ${shape} (send none, or {})${bulk}`
      errors = keys.map((path) => ({ path, message }))
    } else {
      errors = [{ path: '(root)', message: `must be empty or {}: ${shape}` }]
    }
    const detail = errors.map((e) => `${e.path}: ${e.message}`).join('; ')
    throw new AppError('validation_failed', detail, { errors })
  })
}
