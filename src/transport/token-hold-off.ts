// How long after a failed Graph token request Entra is not asked again: a refusal's cooldown, else a backoff shared by every send.
import type { GraphAuthError } from './graph-token-error.ts'

/** After a permanent failure (e.g. an unregistered certificate) Entra is not asked again for this long. */
export const PERMANENT_FAILURE_COOLDOWN_MS = 60_000
/**
 * After a transient failure (a 5xx, a timeout, a dropped connection) Entra is not asked again for
 * this long, doubling with each failure in a row up to the cap, reset by a success: every send of
 * the process waits on this one delay, so a struggling Entra is not asked once per row.
 */
const TOKEN_BACKOFF_FIRST_MS = 1_000
const TOKEN_BACKOFF_MAX_MS = 300_000

/**
 * How long after a failure Entra is not asked again: a refusal for good, else the backoff of the
 * `streak`-th failure in a row, or Entra's own Retry-After when that is longer.
 */
export function tokenHoldOffMs(e: GraphAuthError, streak: number): number {
  if (e.permanent) return PERMANENT_FAILURE_COOLDOWN_MS
  const backoff = Math.min(
    TOKEN_BACKOFF_MAX_MS,
    TOKEN_BACKOFF_FIRST_MS * 2 ** Math.min(streak - 1, 30),
  )
  return Math.max(backoff, e.throttled ? (e.retryAfterMs ?? 0) : 0)
}
