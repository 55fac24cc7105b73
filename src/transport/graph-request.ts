// One authorized Graph request: bearer token, per-request deadline, and at most one token refresh on a 401.
import { randomUUID } from 'node:crypto'
import type { Clock } from '../clock.ts'
import type { SendOutcome } from '../outbox/sender.ts'
import { classifySendFailure, DEFAULT_THROTTLE_MS } from './graph-outcome.ts'
import type { TokenSource } from './graph-token.ts'
import { GraphAuthError } from './graph-token-error.ts'

/**
 * Either Graph's answer (any status) or the outcome of never getting one; `noToken`: no request
 * was made, for want of a token (the outcome is noTokenOutcome's).
 */
type GraphExchange = { res: Response; text: string } | { failed: SendOutcome; noToken?: true }

/** A row that met no token (a refused credential, an Entra outage) is not tried again sooner than this. */
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
        return { failed: noTokenOutcome(e, signal, d.tokens), noToken: true }
      }
      // As Microsoft's SDKs do: Graph echoes it and its activity logs keep it (ClientRequestId).
      const clientRequestId = randomUUID()
      try {
        const res = await d.fetch(url, {
          method: init.method,
          headers: {
            ...init.headers,
            authorization: `Bearer ${token}`,
            'client-request-id': clientRequestId,
          },
          ...(init.body !== undefined ? { body: init.body } : {}),
          signal: deadline,
        })
        // The status is Graph's answer: a body cut off after it (a 202 has none) changes nothing,
        // and must not turn an accepted message into an ambiguous retry, a resend.
        const text = await res.text().catch(() => '')
        // Graph answers 401 for an expired or revoked token: refresh once, then let the caller judge
        // (at once, when the token source knows a new token would be refused too).
        if (res.status !== 401) d.tokens.accepted(token)
        else if (attempt === 1 && d.tokens.invalidate(token)) continue
        return { res, text }
      } catch (e) {
        // No request-id came back: the one the request went with is how Graph's logs can tell
        // whether it arrived (an ambiguous send).
        return { failed: { ...classifySendFailure(e, signal), requestId: clientRequestId } }
      }
    }
  }
}

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
