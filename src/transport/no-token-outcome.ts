// The outcome of a send that met no Graph token: a retry, uncounted and never ambiguous, after Entra may be asked again.
import type { SendOutcome } from '../outbox/sender.ts'
import { classifySendFailure, DEFAULT_THROTTLE_MS } from './graph-outcome.ts'
import { GraphAuthError } from './graph-token-error.ts'
import type { TokenSource } from './token-source.ts'

/** A row that met no token (a refused credential, an Entra outage) is not tried again sooner than this. */
export const MIN_REFUSED_RETRY_MS = 5_000

/**
 * No request to Graph was made, so the retry is never an ambiguous send: a deadline or a network
 * error while waiting for the token is `token_timeout` / `token_network`, not `timeout` / `network`.
 * Nor is it an attempt of the row: whatever kept the token away (a refused credential, Entra
 * throttled, down, hung or unreachable) is the app's problem, so the row waits uncounted, without
 * holding back its mailbox, at least until Entra is asked again (the token source's one shared
 * backoff, Entra's Retry-After, a refusal's cooldown), and fails only at the throttle deadline
 * (or its expiresAt), like a throttled one. Only a shutdown (`aborted`) is left to the caller.
 */
export function noTokenOutcome(
  e: unknown,
  shutdown: AbortSignal,
  tokens: TokenSource,
): SendOutcome {
  const auth = e instanceof GraphAuthError ? e : null
  const f = auth ? null : classifySendFailure(e, shutdown)
  if (f?.code === 'aborted') {
    return {
      kind: 'retry',
      code: f.code,
      message: `no Graph token: ${f.message}`,
      ambiguous: false,
    }
  }
  const waitMs = auth?.permanent
    ? tokens.refusedForMs()
    : auth?.throttled
      ? tokens.throttledForMs() || DEFAULT_THROTTLE_MS
      : tokens.retryInMs()
  return {
    kind: 'retry',
    code: auth ? auth.code : `token_${f?.code}`,
    message: auth ? auth.message : `no Graph token: ${f?.message}`,
    throttled: true,
    afterMs: Math.max(waitMs, tokens.retryInMs(), MIN_REFUSED_RETRY_MS),
    pausesMailbox: false,
    ambiguous: false,
    ...(auth?.httpStatus ? { httpStatus: auth.httpStatus } : {}),
  }
}
