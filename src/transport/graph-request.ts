// One authorized Graph request: bearer token, per-request deadline, and one token refresh on a 401.
import type { Clock } from '../clock.ts'
import type { SendOutcome } from '../outbox/sender.ts'
import { classifySendFailure, DEFAULT_THROTTLE_MS } from './graph-outcome.ts'
import { GraphAuthError, type TokenSource } from './graph-token.ts'

/** Either Graph's answer (any status) or the outcome of never getting one. */
export type GraphExchange = { res: Response; text: string } | { failed: SendOutcome }

/** A row that met a refused credential is not tried again sooner than this. */
const MIN_REFUSED_RETRY_MS = 5_000

export type GraphRequest = (
  url: string,
  init: { method: string; headers?: Record<string, string>; body?: string },
  signal: AbortSignal,
) => Promise<GraphExchange>

export function createGraphRequest(d: {
  tokens: TokenSource
  fetch: typeof fetch
  clock: Clock
  requestTimeoutMs: number
}): GraphRequest {
  return async (url, init, signal) => {
    for (let attempt = 1; ; attempt++) {
      // The deadline covers waiting for a token too: the whole attempt must finish well inside the lease.
      const deadline = AbortSignal.any([signal, AbortSignal.timeout(d.requestTimeoutMs)])
      let token: string
      try {
        token = await d.tokens.getToken(deadline)
      } catch (e) {
        return { failed: tokenFailure(e, signal, d.tokens) }
      }
      try {
        const res = await d.fetch(url, {
          method: init.method,
          headers: { ...init.headers, authorization: `Bearer ${token}` },
          ...(init.body !== undefined ? { body: init.body } : {}),
          signal: deadline,
        })
        // The status is Graph's answer: a body cut off after it (a 202 has none) changes nothing,
        // and must not turn an accepted message into an ambiguous retry, a resend.
        const text = await res.text().catch(() => '')
        // Graph answers 401 for an expired or revoked token: refresh once, then let the caller judge.
        if (res.status === 401 && attempt === 1) {
          d.tokens.invalidate(token)
          continue
        }
        return { res, text }
      } catch (e) {
        return { failed: classifySendFailure(e, signal) }
      }
    }
  }
}

/**
 * No request to Graph was made, so the retry is never an ambiguous send: a deadline or a network
 * error while waiting for the token is `token_timeout` / `token_network`, not `timeout` / `network`.
 * A credential Entra refuses for good (an expired or unregistered certificate) is the app's problem,
 * not the row's: the row waits, uncounted, until Entra is asked again (its code kept, readiness
 * saying why), and fails only at the throttle deadline, like a throttled one. So does a row that
 * met Entra throttled or unavailable (429/503/504): it waits out Entra's Retry-After, uncounted.
 */
function tokenFailure(e: unknown, shutdown: AbortSignal, tokens: TokenSource): SendOutcome {
  if (e instanceof GraphAuthError) {
    const details = e.httpStatus ? { httpStatus: e.httpStatus } : {}
    const waitMs = e.permanent
      ? tokens.refusedForMs()
      : e.throttled
        ? tokens.throttledForMs() || DEFAULT_THROTTLE_MS
        : null
    const refused =
      waitMs === null
        ? {}
        : {
            throttled: true,
            afterMs: Math.max(waitMs, MIN_REFUSED_RETRY_MS),
            pausesMailbox: false,
          }
    return {
      kind: 'retry',
      code: e.code,
      message: e.message,
      ...refused,
      ambiguous: false,
      ...details,
    }
  }
  const f = classifySendFailure(e, shutdown)
  const code = f.code === 'aborted' ? f.code : `token_${f.code}`
  return { kind: 'retry', code, message: `no Graph token: ${f.message}`, ambiguous: false }
}
