// What a Graph token source offers its callers: the cached token, Graph's verdicts on it, Entra's failures and waits.
import type { GraphAuthError } from './graph-token-error.ts'

export interface TokenSource {
  /**
   * The cached token while it serves, else the one refresh's. `signal` ends this caller's wait, not
   * the refresh; already aborted, no request is begun (a token that serves is still handed out).
   */
  getToken(signal?: AbortSignal): Promise<string>
  /**
   * Graph answered 401 to `token`: drops it if it is still the cached one, so the next getToken
   * fetches a new one. False when asking again is pointless: `token` came after Graph's last 401,
   * Graph has accepted it nowhere since, and that 401 is less than REFUSED_AGAIN_HOLD_MS old.
   */
  invalidate(token: string): boolean
  /** Graph answered a request made with `token` with anything but a 401: it takes that token. */
  accepted(token: string): void
  refreshCount(): number
  /** The last token failure, cleared by the next success: readiness reports it. */
  lastError(): GraphAuthError | null
  /** While Entra's last answer was a refusal for good: ms until it is asked again (else 0). */
  refusedForMs(): number
  /** While Entra's last answer was a throttle with Retry-After: ms until it is asked again (else 0). */
  throttledForMs(): number
  /** After any token failure: ms until Entra is asked again (the shared backoff, a Retry-After, a cooldown), else 0. */
  retryInMs(): number
  /** The error getToken would throw now without asking Entra (no usable token, within a failure's hold-off), else null. */
  failingWith(): GraphAuthError | null
  /** ms the cached token is still handed out (a failed refresh leaves it serving until then), else 0. */
  servesForMs(): number
  /**
   * While no cached token serves and the one token request has gone unanswered for TOKEN_SLOW_MS:
   * a promise that resolves when it ends (never rejects); else null.
   */
  slowRequest(): Promise<void> | null
  /**
   * While a token request is in flight: resolves once it ends or turns slow (TOKEN_SLOW_MS), never
   * rejects; else null.
   */
  endsOrSlows(): Promise<void> | null
  /**
   * Begins the background refresh on a timer too, not only at a send: an idle worker holds a fresh
   * token and meets a refusal before its cached token's use ends. One timer at a time, armed while
   * a cached token serves; returns its end (serve's stop). Commands that ask once never call it.
   */
  keepFresh(): () => void
}
