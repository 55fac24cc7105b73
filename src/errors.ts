// Application errors: every failure the product reports carries a fixed code; the API maps codes to HTTP.
import { namesInPlaceOfMessage } from './database-error-names.ts'

export type ErrorCode =
  | 'config_invalid'
  | 'schema_missing'
  | 'schema_outdated'
  | 'schema_ahead'
  | 'migration_checksum_mismatch'
  | 'migration_lock_timeout'
  | 'migration_deadline'
  | 'validation_failed'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'template_not_found'
  | 'template_error'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  | 'idempotency_key_reused'
  | 'send_started'
  | 'unauthorized'
  | 'auth_unavailable'
  | 'forbidden'
  | 'sender_not_allowed'
  | 'rate_limited'
  | 'large_bodies_busy'
  | 'database_unknown'
  | 'database_unavailable'
  | 'database_permission_denied'
  | 'lease_lost'
  | 'internal'

/** Process exit codes: documented in --help and the README. */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  schema: 3,
  unreachable: 4,
  attention: 5,
  /** status: a database's role may not read the mailer schema (42501, a privilege refused). */
  permission: 6,
} as const

export class AppError extends Error {
  override readonly name = 'AppError'
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: Record<string, unknown>,
    options?: ErrorOptions,
  ) {
    super(message, options)
  }
}

export const isAppError = (e: unknown, code?: ErrorCode): e is AppError =>
  e instanceof AppError && (code === undefined || e.code === code)

/** A message safe to log: never includes row data, only what the error itself says. */
export function describeError(e: unknown): string {
  if (e instanceof Error) return namesInPlaceOfMessage(e) ?? e.message
  return String(e)
}

/** An error's stack, safe to log: a server error's that can quote a row's values (its first line) is its names. */
export function describeStack(e: unknown): string | undefined {
  if (!(e instanceof Error)) return undefined
  return namesInPlaceOfMessage(e) ?? e.stack
}

/** The exit code of a command that ended with `e` (README's table). */
export function exitCodeOf(e: unknown): number {
  if (isAppError(e, 'config_invalid')) return EXIT.usage
  if (
    isAppError(e) &&
    ['schema_missing', 'schema_outdated', 'schema_ahead', 'migration_checksum_mismatch'].includes(
      e.code,
    )
  ) {
    return EXIT.schema
  }
  return EXIT.failure
}
