// The app-only Graph access token: one cache per process, one refresh in flight, Entra errors kept by code.
import { monotonicNow } from '../clock.ts'
import type { Logger } from '../log.ts'
import { abortable } from './abortable-wait.ts'
import { entraRefusalHint } from './entra-refusal-hints.ts'
import { GraphAuthError } from './graph-token-error.ts'
import { type IssuedToken, requestGraphToken, type TokenRequest } from './graph-token-request.ts'
import { PERMANENT_FAILURE_COOLDOWN_MS, tokenHoldOffMs } from './token-hold-off.ts'

/**
 * Graph refusing (401) the token fetched after its last 401 says that a new token does not help
 * (an expired or revoked one is replaced at once): Entra is asked again after this long, not at
 * every send, whose attempts would each cost a token request (Entra's loop detection, AADSTS50196).
 */
const REFUSED_AGAIN_HOLD_MS = 60_000
/**
 * A token request Entra has not answered for this long, with no cached token serving, is slow: the
 * rows a worker claimed are given back for workers with a token rather than held for the request's
 * own 30 s deadline, and the worker claims none until it ends (sender.ts `unavailable`, drainer.ts).
 * Entra answers in well under a second; a real timer, as the request's own deadline is.
 */
export const TOKEN_SLOW_MS = 3_000
/** The code of a row given back for a slow token request (a `token_…` wait: settle-item.ts). */
export const TOKEN_SLOW_CODE = 'token_slow'

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

/** Calls `fn` once `ms` have passed; returns its cancel. */
export type SetTimer = (ms: number, fn: () => void) => () => void

/** A real timer that keeps no process alive: a `serve` stopping clears it, any other exits past it. */
const unrefTimer: SetTimer = (ms, fn) => {
  const timer = setTimeout(fn, ms)
  timer.unref()
  return () => clearTimeout(timer)
}

interface TokenSourceDeps extends TokenRequest {
  /** TOKEN_SLOW_MS unless given (a test that stops a worker mid-wait, timed by its own clock). */
  slowMs?: number
  log: Logger
  /** Told about every token request's result, a failure with its code (metrics). */
  onRefresh?: (outcome: 'success' | 'failure', code?: string) => void
  /** keepFresh's timer: unrefTimer unless given (a test's, moved by its clock). */
  setTimer?: SetTimer
  /** Graph's 401 dropped the cached token (invalidate): none serves until the next one comes. */
  onDropped?: () => void
}

export function tokenUrlFor(authorityUrl: string, tenantId: string): string {
  return `${authorityUrl.replace(/\/+$/, '')}/${encodeURIComponent(tenantId)}/oauth2/v2.0/token`
}

/** The resource is the Graph host the API URL points at, so sovereign clouds get their own. */
export function graphScopeFor(apiUrl: string): string {
  return `${new URL(apiUrl).origin}/.default`
}

export function createTokenSource(d: TokenSourceDeps): TokenSource {
  let cached: IssuedToken | undefined
  let inflight: Promise<string> | undefined
  let refreshes = 0
  // Every time kept here (`at`, the token's refreshAt/usableUntil) is a monotonic reading: a wall
  // clock stepped back an hour would hold Entra off (and every row's token wait) for that hour.
  /** `holdOffMs`: how long after `at` Entra is not asked again; `streak`: failures in a row. */
  let failure: { error: GraphAuthError; at: number; holdOffMs: number; streak: number } | undefined
  /** Since Graph's last 401 dropped a token (`at`): the next token (once fetched), until Graph accepts it. */
  let unproven: { at: number; token?: string } | undefined
  /** The request in flight: `ended` when it settles, `slowed` at TOKEN_SLOW_MS or its end. */
  let watch: { slow: boolean; ended: Promise<void>; slowed: Promise<void> } | undefined
  /** keepFresh's: whether it is on, and the cancel of its one armed timer. */
  let keptFresh = false
  let cancelAhead: (() => void) | undefined

  // Counted when asked, whatever the answer.
  const requestToken = () => {
    refreshes++
    return requestGraphToken(d)
  }

  function refresh(): Promise<string> {
    if (inflight) return inflight
    const ended = Promise.withResolvers<void>()
    const slowed = Promise.withResolvers<void>()
    const w = { slow: false, ended: ended.promise, slowed: slowed.promise }
    const timer = setTimeout(() => {
      w.slow = true
      slowed.resolve()
    }, d.slowMs ?? TOKEN_SLOW_MS)
    // Nothing to wait for once the process is done otherwise (a command's one token request).
    timer.unref()
    watch = w
    inflight = requestToken()
      .then((c) => {
        cached = c
        if (unproven && unproven.token === undefined) unproven.token = c.token
        failure = undefined
        d.onRefresh?.('success')
        return c.token
      })
      .catch((e: unknown) => {
        const error = e instanceof GraphAuthError ? e : GraphAuthError.network(e)
        const streak = (failure?.streak ?? 0) + 1
        failure = {
          error,
          at: monotonicNow(d.clock),
          holdOffMs: tokenHoldOffMs(error, streak),
          streak,
        }
        d.onRefresh?.('failure', error.code)
        d.log.warn('graph token request failed', {
          code: error.code,
          hint: entraRefusalHint(error.code),
          permanent: error.permanent,
          httpStatus: error.httpStatus,
          failuresInARow: streak,
          retryInMs: failure.holdOffMs,
        })
        throw error
      })
      .finally(() => {
        inflight = undefined
        watch = undefined
        clearTimeout(timer)
        ended.resolve()
        slowed.resolve()
        armAhead()
      })
    return inflight
  }

  /**
   * The background refresh, begun while the cached token serves and its refresh is due: not while
   * one is in flight, within a failure's hold-off (a refusal's minute, a Retry-After, the backoff),
   * nor within BACKGROUND_REFRESH_RETRY_MS of a failure Entra set no wait for (a network error, a 5xx).
   */
  function refreshAhead(now: number, signal?: AbortSignal) {
    if (!cached || now >= cached.usableUntil || now < cached.refreshAt) return
    const retryLater = failure !== undefined && now - failure.at < BACKGROUND_REFRESH_RETRY_MS
    if (signal?.aborted || inflight || holdingOff(now) || retryLater) return
    // Callers keep the valid token; a failure is only logged (and kept: readiness, the registry).
    refresh().catch(() => {})
  }

  /** While kept fresh and a cached token serves: a timer at the next moment refreshAhead may ask. */
  function armAhead() {
    cancelAhead?.()
    cancelAhead = undefined
    if (!keptFresh || inflight || !cached) return
    const now = monotonicNow(d.clock)
    const after = failure
      ? failure.at + Math.max(failure.holdOffMs, BACKGROUND_REFRESH_RETRY_MS)
      : 0
    const at = Math.max(cached.refreshAt, after)
    // Past the use's end a send (or a readiness probe) asks, as at a start: nothing to refresh ahead.
    if (now >= cached.usableUntil || at >= cached.usableUntil) return
    cancelAhead = (d.setTimer ?? unrefTimer)(Math.max(0, at - now), () => {
      cancelAhead = undefined
      refreshAhead(monotonicNow(d.clock))
      // Begun: its end arms the next. Not (a timer a little early): again, for what is left.
      armAhead()
    })
  }

  const holdingOff = (now: number) => failure !== undefined && now - failure.at < failure.holdOffMs
  const msUntil = (at: number) => Math.max(0, at - monotonicNow(d.clock))

  return {
    async getToken(signal) {
      const now = monotonicNow(d.clock)
      // The shared backoff (or Entra's Retry-After, a refusal's cooldown) holds for a background refresh too.
      if (cached && now < cached.usableUntil) {
        refreshAhead(now, signal)
        return cached.token
      }
      if (holdingOff(now) && failure) throw failure.error
      // A caller that has given up (a stop, a deadline past) begins no request, background or
      // its own: abortable would leave it behind at once, one more request to Entra for nothing.
      if (signal?.aborted) throw signal.reason
      return abortable(refresh(), signal)
    },
    invalidate(token) {
      // Another caller's 401 already replaced it: the caller tries the newer token.
      if (cached?.token !== token) return true
      const now = monotonicNow(d.clock)
      if (unproven?.token === token && now - unproven.at < REFUSED_AGAIN_HOLD_MS) return false
      cached = undefined
      unproven = { at: now }
      d.onDropped?.()
      return true
    },
    accepted(token) {
      if (unproven?.token === token) unproven = undefined
    },
    refreshCount: () => refreshes,
    lastError: () => failure?.error ?? null,
    refusedForMs: () =>
      failure?.error.permanent ? msUntil(failure.at + PERMANENT_FAILURE_COOLDOWN_MS) : 0,
    throttledForMs: () =>
      failure?.error.throttled && failure.error.retryAfterMs !== undefined
        ? msUntil(failure.at + failure.holdOffMs)
        : 0,
    retryInMs: () => (failure ? msUntil(failure.at + failure.holdOffMs) : 0),
    failingWith() {
      const now = monotonicNow(d.clock)
      if (cached && now < cached.usableUntil) return null
      return holdingOff(now) ? (failure?.error ?? null) : null
    },
    servesForMs: () => (cached ? msUntil(cached.usableUntil) : 0),
    slowRequest() {
      if (!watch?.slow) return null
      return cached && monotonicNow(d.clock) < cached.usableUntil ? null : watch.ended
    },
    endsOrSlows: () => watch?.slowed ?? null,
    keepFresh() {
      keptFresh = true
      armAhead()
      return () => {
        keptFresh = false
        cancelAhead?.()
        cancelAhead = undefined
      }
    },
  }
}

/** A background refresh that failed is tried again after this long (the cached token still serves). */
const BACKGROUND_REFRESH_RETRY_MS = 30_000
