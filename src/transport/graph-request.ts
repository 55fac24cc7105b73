// One authorized Graph request: bearer token, per-request deadline, and at most one token refresh on a 401.
import { randomUUID } from 'node:crypto'
import { type Clock, monotonicNow } from '../clock.ts'
import type { SendOutcome, TokenSlowKeep } from '../outbox/sender.ts'
import { abortable } from './abortable-wait.ts'
import { parseGraphError } from './graph-error-text.ts'
import { classifySendFailure, notConnected } from './graph-outcome.ts'
import type { GraphReachability } from './graph-reachability.ts'
import { MIN_REFUSED_RETRY_MS, noTokenOutcome } from './no-token-outcome.ts'
import type { TokenSource } from './token-source.ts'
import { tokenTurnsSlow } from './token-turns-slow.ts'
import { TOKEN_SLOW } from './unsent-outcomes.ts'

/**
 * Either Graph's answer (any status) or the outcome of never getting one; `unsent`: nothing of the
 * request reached Graph, for want of a token (the outcome is noTokenOutcome's) or of Graph (out
 * of reach, or refusing every token: graph-reachability.ts), so a send would meet the same wait.
 */
export type GraphExchange = { res: Response; text: string } | { failed: SendOutcome; unsent?: true }

/**
 * The code of a row given back unsent, uncounted, because Graph answered 401 to the cached token
 * with too little of the request's deadline left for a fresh token and the request again: a token
 * wait (outbox/settle-item.ts TOKEN_WAIT_CODE), the stale token dropped for the row's next try.
 */
export const TOKEN_REFUSED_LATE_CODE = 'token_refused_late'
/**
 * After a 401 the fresh token and the request again go only with this share of the deadline left:
 * a 401 to a stale token comes at once, so a late one says Graph is slow, and a request with less
 * than half a timeout would likely time out (ambiguous, counted, looked up); the 401 is a definite no.
 */
const AGAIN_MIN_LEFT_SHARE = 0.5

export type GraphRequest = (
  url: string,
  init: { method: string; headers?: Record<string, string>; body?: string },
  signal: AbortSignal,
  /**
   * The monotonic reading (monotonicNow) its deadline runs from: a send's start, where its lease
   * was last checked, not this call, which awaits on the way (the database id). Now when not given.
   */
  startedAt?: number,
  /** Asked should the wait for its token turn slow: kept for it, or given back (none: given back). */
  kept?: TokenSlowKeep,
) => Promise<GraphExchange>

export function createGraphRequest(d: {
  tokens: TokenSource
  fetch: typeof fetch
  clock: Clock
  requestTimeoutMs: number
  reachability: GraphReachability
}): GraphRequest {
  return async (url, init, signal, startedAt, kept) => {
    // One deadline for the whole send: the wait for a probe's answer, the token, the request and,
    // after a 401, the fresh token and the request again. lease-deadlines.ts starts a send only
    // with a margin of one request timeout (the provider slot lives little longer): bytes leaving
    // later could outlive a lease whose heartbeats fail, and a reclaimer's lookup come before
    // Graph files the message: sent twice.
    // On the monotonic clock, as the timer is: a wall clock stepped back would let a request go
    // again after a 401, or on after a probe, past its deadline; stepped forward, refuse it in time.
    const now = monotonicNow(d.clock)
    const deadlineAt = (startedAt ?? now) + d.requestTimeoutMs
    const deadline = AbortSignal.any([signal, AbortSignal.timeout(Math.max(0, deadlineAt - now))])
    const admitted = await d.reachability.admit(deadline, deadlineAt, signal)
    if (admitted !== 'go' && admitted !== 'probe') return { failed: admitted, unsent: true }
    try {
      for (let attempt = 1; ; attempt++) {
        const exchange = await exchangeOnce(url, init, signal, deadline, deadlineAt, attempt, kept)
        if (exchange !== 'again') return exchange
      }
    } finally {
      if (admitted === 'probe') d.reachability.probeDone()
    }
  }

  /** One request with the cached token; `again` after a 401 that a fresh token may cure. */
  async function exchangeOnce(
    url: string,
    init: Parameters<GraphRequest>[1],
    signal: AbortSignal,
    deadline: AbortSignal,
    deadlineAt: number,
    attempt: number,
    kept: TokenSlowKeep | undefined,
  ): Promise<GraphExchange | 'again'> {
    let token: string
    // What ends the send's wait for its token as a stop: the kept wait's own stop too.
    let shutdown = signal
    try {
      let pending = d.tokens.getToken(deadline)
      if (await tokenTurnsSlow(d.tokens, pending)) {
        // A worker alone keeps the row for the one request (no other could take it given back):
        // within the send's deadline, as before the give-back; a stop ends the wait, unsent.
        const until = (await kept?.(deadline, deadlineAt - monotonicNow(d.clock))) ?? null
        if (until === null) return { failed: TOKEN_SLOW, unsent: true }
        shutdown = AbortSignal.any([signal, until])
        pending = abortable(pending, until)
      }
      token = await pending
    } catch (e) {
      return { failed: noTokenOutcome(e, shutdown, d.tokens), unsent: true }
    }
    // A token taken up past the deadline (the event loop held, by a long render, say, so its timer
    // has not fired yet) makes no request: as one that never came, a token wait. Made, its bytes
    // left past the lease's margin, and a reclaimer that had looked the row up sent it too.
    if (!deadline.aborted && monotonicNow(d.clock) >= deadlineAt) {
      const late = new DOMException('The operation timed out.', 'TimeoutError')
      return { failed: noTokenOutcome(late, signal, d.tokens), unsent: true }
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
        // Graph answers itself and never redirects: a 3xx is something in between (a gateway, an
        // http:// URL's upgrade). Followed, a 301/302/303 turns the POST into a GET whose 200 (a
        // notice page) reads as an accepted sendMail, and the token goes wherever it points.
        redirect: 'manual',
        signal: deadline,
      })
      // The status is Graph's answer: a body cut off after it (a 202 has none) changes nothing,
      // and must not turn an accepted message into an ambiguous retry, a resend.
      const text = await res.text().catch(() => '')
      // Graph answers 401 for an expired or revoked token: refresh once. A 401 to the fresh one
      // (or when the token source knows a new one would be refused too) is the app's, not the
      // row's: a deleted app registration, a tenant mismatch. Every request would meet it.
      if (res.status !== 401) {
        d.tokens.accepted(token)
        d.reachability.answered()
        return { res, text }
      }
      const error = parseGraphError(text)
      const code = error.code ?? 'http_401'
      const requestId = res.headers.get('request-id') ?? error.requestId
      if (attempt === 1 && d.tokens.invalidate(token)) {
        // A stop ends the send here: the 401 says Graph has nothing of it.
        if (signal.aborted)
          return { failed: noTokenOutcome(signal.reason, signal, d.tokens), unsent: true }
        // Invariant: the fresh token and the request again end by the first one's deadline, too.
        const leftMs = deadlineAt - monotonicNow(d.clock)
        if (!deadline.aborted && leftMs >= d.requestTimeoutMs * AGAIN_MIN_LEFT_SHARE) return 'again'
        const failed: SendOutcome = {
          kind: 'retry',
          code: TOKEN_REFUSED_LATE_CODE,
          message: `Graph refused the token (HTTP 401 ${code}) with ${Math.max(0, Math.round(leftMs / 100) / 10)} s of the request's ${d.requestTimeoutMs / 1000} s deadline left, too little for a fresh one and the request again: not sent`,
          throttled: true,
          afterMs: Math.max(d.tokens.retryInMs(), MIN_REFUSED_RETRY_MS),
          pausesMailbox: false,
          ambiguous: false,
          httpStatus: 401,
          ...(requestId ? { requestId } : {}),
        }
        return { failed, unsent: true }
      }
      const failed = d.reachability.failed('unauthorized', {
        code,
        message: `Graph refuses this app's tokens (HTTP 401 ${code}): ${error.message ?? 'no message'}`,
        httpStatus: 401,
        ...(requestId ? { requestId } : {}),
      })
      return { failed, unsent: true }
    } catch (e) {
      const f = classifySendFailure(e, signal)
      // No connection was made (refused, no such host, a certificate that failed verification):
      // Graph cannot have the request, and every other one would meet the same.
      const errno = f.code === 'network' ? notConnected(e) : null
      if (errno) {
        const failed = d.reachability.failed('unreachable', {
          code: errno,
          message: `Graph unreachable (${errno}): ${f.message}`,
        })
        return { failed, unsent: true }
      }
      // No request-id came back: the one the request went with is how Graph's logs can tell
      // whether it arrived (an ambiguous send).
      return { failed: { ...f, requestId: clientRequestId } }
    }
  }
}
