// Token endpoint failures: Entra's AADSTS code, and whether asking again could ever help.
import { THROTTLE_STATUSES } from './graph-outcome.ts'

/** Entra `error` values that mean the request itself is wrong: retrying cannot fix them. */
const PERMANENT_ERRORS = new Set([
  'invalid_client',
  'unauthorized_client',
  'invalid_request',
  'invalid_scope',
  'invalid_grant',
  'invalid_resource',
  'unsupported_grant_type',
])

/** AADSTS codes that come with a 4xx but clear up by themselves (throttling, loop detection). */
const TRANSIENT_AADSTS = new Set(['AADSTS50196', 'AADSTS90055'])

/** Entra's code says it throttles the token request (TRANSIENT_AADSTS), whatever 4xx came with it. */
export const isEntraThrottle = (code: string | undefined): boolean =>
  code !== undefined && TRANSIENT_AADSTS.has(code)

export class GraphAuthError extends Error {
  override readonly name = 'GraphAuthError'
  /** Entra asked us to come back later (429/503/504, a throttling AADSTS code): not the row's fault. */
  readonly throttled: boolean
  /** Entra's Retry-After, when it sent one: Entra is not asked again before it has passed. */
  readonly retryAfterMs: number | undefined
  constructor(
    /** `AADSTS700027`, or `token_http_503`, `token_network`, `token_timeout`, `token_response_invalid`. */
    readonly code: string,
    message: string,
    /** True when asking Entra again with the same credential will fail the same way. */
    readonly permanent: boolean,
    readonly httpStatus?: number,
    options?: ErrorOptions & { throttled?: boolean; retryAfterMs?: number | undefined },
  ) {
    super(message, options)
    this.throttled = options?.throttled === true
    this.retryAfterMs = options?.retryAfterMs
  }

  /** No answer from `tokenUrl`: the host it could not reach and why (a host name is no secret). */
  static network(cause: unknown, tokenUrl?: string, timeoutMs?: number): GraphAuthError {
    if (cause instanceof GraphAuthError) return cause
    const timedOut = cause instanceof DOMException && cause.name === 'TimeoutError'
    const to = tokenUrl ? ` to ${hostOf(tokenUrl)}` : ''
    return new GraphAuthError(
      timedOut ? 'token_timeout' : 'token_network',
      timedOut
        ? `token request${to} timed out${timeoutMs ? ` (no answer within ${timeoutMs / 1000} s)` : ''}`
        : `token request${to} failed before a response: ${networkCause(cause)}`,
      false,
      undefined,
      { cause },
    )
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).host
  } catch {
    return 'the token URL'
  }
}

/** What each connect failure's code says: DNS, refused, no route, reset, a certificate. */
const CAUSES: Readonly<Record<string, string>> = {
  ENOTFOUND: 'the host name does not resolve (DNS: ENOTFOUND)',
  EAI_AGAIN: 'the host name does not resolve (DNS: EAI_AGAIN, failing now)',
  ECONNREFUSED: 'connection refused (ECONNREFUSED): nothing listens there, or a firewall refuses',
  ETIMEDOUT: 'the connection timed out (ETIMEDOUT): network or firewall',
  EHOSTUNREACH: 'no route to the host (EHOSTUNREACH): network or firewall',
  ENETUNREACH: 'no route to the host (ENETUNREACH): network or firewall',
  ECONNRESET: 'the connection was reset (ECONNRESET): a proxy or firewall on the way?',
}

/** The cause of a fetch that got no answer, by its code; a TLS code is a certificate not trusted. */
function networkCause(e: unknown): string {
  // A host with several addresses, each failing: the first one's failure stands for them.
  const first = e instanceof AggregateError && e.errors.length > 0 ? e.errors[0] : e
  const code = (first as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return first instanceof Error ? first.name : 'no answer'
  if (CAUSES[code]) return CAUSES[code]
  if (/CERT|TLS|SELF_SIGNED|ISSUER/.test(code))
    return `its TLS certificate is not trusted (${code})`
  return code
}

/**
 * Turns a non-200 token response into a GraphAuthError; the description keeps only its first line.
 * `retryAfterMs` is the response's Retry-After, if any.
 */
export function parseTokenError(
  status: number,
  text: string,
  retryAfterMs?: number,
): GraphAuthError {
  let json: { error?: unknown; error_description?: unknown; error_codes?: unknown } = {}
  try {
    json = JSON.parse(text) as typeof json
  } catch {}
  const error = typeof json.error === 'string' ? json.error : undefined
  const description =
    typeof json.error_description === 'string' ? json.error_description : `HTTP ${status}`
  const code = aadstsCode(json.error_codes, description) ?? `token_http_${status}`
  // The first line is the human message; the rest is Trace ID / Correlation ID / Timestamp noise.
  const firstLine = description.split(/\r?\n/)[0] ?? description
  const permanent =
    status >= 400 &&
    status < 500 &&
    status !== 408 &&
    status !== 429 &&
    !TRANSIENT_AADSTS.has(code) &&
    (error === undefined || PERMANENT_ERRORS.has(error))
  const throttled = THROTTLE_STATUSES.has(status) || TRANSIENT_AADSTS.has(code)
  return new GraphAuthError(
    code,
    error ? `${error}: ${firstLine}` : firstLine,
    permanent,
    status,
    throttled ? { throttled, retryAfterMs } : {},
  )
}

function aadstsCode(codes: unknown, description: string): string | undefined {
  if (Array.isArray(codes) && typeof codes[0] === 'number') return `AADSTS${codes[0]}`
  const m = /AADSTS(\d+)/.exec(description)
  return m ? `AADSTS${m[1]}` : undefined
}
