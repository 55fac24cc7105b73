// The app-only Graph access token: one cache per process, one refresh in flight, Entra errors kept by code.
import { monotonicNow } from '../clock.ts'
import type { Logger } from '../log.ts'
import { abortable } from './abortable-wait.ts'
import { entraRefusalHint } from './entra-refusal-hints.ts'
import { GraphAuthError } from './graph-token-error.ts'
import { type IssuedToken, requestGraphToken, type TokenRequest } from './graph-token-request.ts'
import { PERMANENT_FAILURE_COOLDOWN_MS, tokenHoldOffMs } from './token-hold-off.ts'
import { TOKEN_SLOW_MS } from './token-slow.ts'
import type { TokenSource } from './token-source.ts'
import { type SetTimer, unrefTimer } from './unref-timer.ts'

/**
 * Graph refusing (401) the token fetched after its last 401 says that a new token does not help
 * (an expired or revoked one is replaced at once): Entra is asked again after this long, not at
 * every send, whose attempts would each cost a token request (Entra's loop detection, AADSTS50196).
 */
const REFUSED_AGAIN_HOLD_MS = 60_000
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
