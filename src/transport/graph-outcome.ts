// The one mapping from a Graph sendMail response (or a failed fetch) to the drainer's closed set of outcomes.
import type { SendOutcome } from '../outbox/sender.ts'
import { parseGraphError, redact } from './graph-error-text.ts'

/** Retry-After absent on a throttle: Graph says back off; 30 s keeps us well clear of the limit. */
export const DEFAULT_THROTTLE_MS = 30_000
/** MSAL's ThrottlingConstants cap: a Retry-After beyond an hour is treated as an hour. */
export const MAX_RETRY_AFTER_MS = 3_600_000
/**
 * The mailbox's sending quota is spent (Exchange counts recipients over a rolling 24 h): it comes
 * back over minutes to hours, so asking every 30 s would only fill the attempt history.
 */
export const SENDING_QUOTA_PAUSE_MS = 15 * 60_000

const GATEWAY_TIMEOUT = 504
/** A gateway's "invalid answer from the backend": Graph uses it (Microsoft's Dev Proxy lists it). */
const BAD_GATEWAY = 502
/** The statuses by which Graph and Entra say "come back later" (throttled or unavailable). */
export const THROTTLE_STATUSES: ReadonlySet<number> = new Set([429, 503, GATEWAY_TIMEOUT])
/**
 * Codes that come with a 400 or 403 (or a 507) but say the mailbox may not send for now, not that
 * the message is wrong: its sending quota is spent ("Daily Message/Recipient limit exceeded"), or
 * its store is full ("Mailbox has exceeded maximum mailbox size.": sendMail saves the message in
 * the sender's mailbox; a noreply mailbox's Sent Items fill it up). Every row from the mailbox
 * would meet it, and failing them would fail its whole backlog within seconds.
 */
const SENDING_QUOTA_CODES = new Set([
  'ErrorExceededMessageLimit',
  'ErrorQuotaExceeded',
  'QuotaExceededException',
])

/** Whether Graph's code says the mailbox may not send (nor be read) for now: SENDING_QUOTA_CODES. */
export function isMailboxQuota(code: string | undefined): boolean {
  return code !== undefined && SENDING_QUOTA_CODES.has(code)
}
/**
 * 403s by which the app may not send from the mailbox at all: `Mail.Send` not (yet) consented, or an
 * application access policy leaving the mailbox out. An administrator's fix, not the message's:
 * failing the rows would fail the whole backlog in seconds, e.g. a first deploy that beat the
 * consent. They wait like a throttled row (uncounted, the mailbox paused, failed only at
 * THROTTLE_DEADLINE_SECONDS as `throttled`, this code in its last error). A from the app may not send as (ErrorSendAsDenied)
 * is the message's own error and stays a reject.
 */
const APP_PERMISSION_CODES = new Set(['ErrorAccessDenied', 'NoPermissionsInAccessToken'])
/** How long a mailbox the app may not send from is left alone before the next try. */
export const APP_PERMISSION_PAUSE_MS = 5 * 60_000
/**
 * How long the configured sender mailbox (MAIL_FROM) that Graph does not know or will not serve
 * (a 404) is left alone before the next row probes it: a fix (the variable, the mailbox) takes
 * minutes, and every row asking at once would only fill the attempt history.
 */
export const SENDER_MAILBOX_PAUSE_MS = APP_PERMISSION_PAUSE_MS

/**
 * Whether Graph refused the sender mailbox itself rather than the message: a 404 (sendMail's one
 * resource is `/users/{mailbox}`: `ErrorInvalidUser`, `MailboxNotEnabledForRESTAPI`,
 * `ResourceNotFound`), or a 403 by which the app may not send from it (APP_PERMISSION_CODES).
 */
export function refusesMailbox(status: number, code: string): boolean {
  return status === 404 || (status === 403 && APP_PERMISSION_CODES.has(code))
}

/** A refusal of the mailbox itself waits as a throttle does, and is said as what it is (SendGate.pause). */
const MAILBOX_REFUSED = { throttled: true, refusesMailbox: true } as const

/**
 * Codes: the Graph error code as Graph spells it (`ErrorInvalidRecipients`, `ApplicationThrottled`),
 * or `http_<status>` when the body names none. Graph codes are PascalCase, ours snake_case, so they
 * never collide.
 */
export function classifySendResponse(
  status: number,
  headers: Headers,
  bodyText: string,
  now: number,
  /**
   * `default`: the mailbox is the configured MAIL_FROM, which every row naming no sender of its own
   * shares. A 404 then says the configuration is wrong, not the row: failing it would fail every
   * such row within seconds (a typo on deploy: hours of mail), so it waits like a throttled row
   * (uncounted, the mailbox paused, failed only at THROTTLE_DEADLINE_SECONDS as `throttled`). A row
   * that names a mailbox of its own Graph does not know still fails at once, alone.
   */
  mailbox: 'default' | 'own' = 'own',
): SendOutcome {
  const error = parseGraphError(bodyText)
  const requestId = headers.get('request-id') ?? error.requestId
  const details = { httpStatus: status, ...(requestId ? { requestId } : {}) }
  // A 2xx means Graph owns the message now; repeating it would send it twice, Retry-After or not.
  if (status >= 200 && status < 300) return { kind: 'sent', ...details }
  const code = error.code ?? `http_${status}`
  const message = error.message ?? `Graph answered HTTP ${status}`
  // The request settles every 401 itself (a fresh token, then graph_unauthorized: graph-request.ts),
  // so none comes here; should one, it is the token's, never the message's: a retry, not a reject.
  if (status === 401) return { kind: 'retry', code, message, ...details }
  if (SENDING_QUOTA_CODES.has(code)) {
    const afterMs = throttleWaitMs(headers, now, SENDING_QUOTA_PAUSE_MS)
    return { kind: 'retry', code, message, afterMs, throttled: true, ...details }
  }
  if (status === 403 && APP_PERMISSION_CODES.has(code)) {
    const afterMs = throttleWaitMs(headers, now, APP_PERMISSION_PAUSE_MS)
    return { kind: 'retry', code, message, afterMs, ...MAILBOX_REFUSED, ...details }
  }
  if (mailbox === 'default' && refusesMailbox(status, code)) {
    const afterMs = throttleWaitMs(headers, now, SENDER_MAILBOX_PAUSE_MS)
    return { kind: 'retry', code, message, afterMs, ...MAILBOX_REFUSED, ...details }
  }
  if (THROTTLE_STATUSES.has(status)) {
    const afterMs = throttleWaitMs(headers, now, DEFAULT_THROTTLE_MS)
    // A gateway timeout answers for a backend that may have taken the message after all.
    const maybeSent = status === GATEWAY_TIMEOUT ? { ambiguous: true } : {}
    return { kind: 'retry', code, message, afterMs, throttled: true, ...maybeSent, ...details }
  }
  if (status >= 500 || status === 408 || status < 200 || (status >= 300 && status < 400)) {
    // So does a gateway's 502: the backend took the request, and its answer was lost on the way.
    const maybeSent = status === BAD_GATEWAY ? { ambiguous: true } : {}
    return { kind: 'retry', code, message, ...maybeSent, ...details }
  }
  return { kind: 'reject', code, message, ...details }
}

/**
 * Errors raised before a connection existed (refused, no such host) or before it carried anything
 * (a certificate that failed verification): no byte of the request left, so Graph cannot have the
 * message. Any other failure may have come after Graph took it.
 */
const NOT_CONNECTED = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  // The host's certificate failed verification: the TLS handshake ended before any request byte.
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
])

/** The error's code when it says no connection was made (NOT_CONNECTED), else null. */
export function notConnected(error: unknown): string | null {
  const errno = (error as { code?: unknown } | null)?.code
  return typeof errno === 'string' && NOT_CONNECTED.has(errno) ? errno : null
}

/** A fetch that produced no response. Graph may still have accepted the message: at-least-once. */
export function classifySendFailure(
  error: unknown,
  shutdown: AbortSignal,
): Extract<SendOutcome, { kind: 'retry' }> {
  if (shutdown.aborted)
    return { kind: 'retry', code: 'aborted', message: 'send aborted by shutdown' }
  if (error instanceof DOMException && error.name === 'TimeoutError') {
    return { kind: 'retry', code: 'timeout', message: 'Graph request exceeded its deadline' }
  }
  const reason = error instanceof Error ? `${error.name}: ${error.message}` : 'unknown error'
  const unsent = notConnected(error) ? { ambiguous: false } : {}
  return {
    kind: 'retry',
    code: 'network',
    message: `Graph request failed: ${redact(reason)}`,
    ...unsent,
  }
}

/**
 * How long a throttled row (and its mailbox) waits: Retry-After, else `fallback`, but at least a
 * second: `Retry-After: 0` would retry at once, uncounted, until the throttle deadline. A throttled
 * mailbox lookup waits by the same rule.
 */
const MIN_THROTTLE_MS = 1_000
export function throttleWaitMs(headers: Headers, now: number, fallback: number): number {
  return Math.max(MIN_THROTTLE_MS, retryAfterMs(headers.get('retry-after'), now) ?? fallback)
}

/** Retry-After as delta-seconds or an HTTP-date, in ms from `now`; undefined when absent or garbled. */
export function retryAfterMs(value: string | null, now: number): number | undefined {
  if (value === null || value.trim() === '') return undefined
  const v = value.trim()
  let ms: number
  if (/^\d+(\.\d+)?$/.test(v)) ms = Number(v) * 1000
  // An HTTP-date names a weekday and month; Date.parse alone would read "-3" as a year.
  else if (/^[A-Za-z]{3}, /.test(v)) ms = Date.parse(v) - now
  else return undefined
  if (!Number.isFinite(ms)) return undefined
  return Math.min(MAX_RETRY_AFTER_MS, Math.max(0, Math.round(ms)))
}
