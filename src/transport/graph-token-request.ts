// One client_credentials request to Entra for a Graph token, and when the token it answers with is renewed.
import { type Clock, monotonicNow } from '../clock.ts'
import type { GraphCredential } from './graph-credential.ts'
import { retryAfterMs } from './graph-outcome.ts'
import { GraphAuthError, parseTokenError } from './graph-token-error.ts'

/** MSAL's DEFAULT_TOKEN_RENEWAL_OFFSET_SEC: a token is not handed out in its last 5 minutes. */
const TOKEN_RENEWAL_OFFSET_MS = 5 * 60_000
const TOKEN_REQUEST_TIMEOUT_MS = 30_000
/**
 * Without Entra's refresh_in (its usual client-credentials answer: expires_in alone), a refresh
 * begins in the background this long before the token's use ends, the cached token serving
 * meanwhile: else every worker's sends waited for a new token once an hour, and a request Entra
 * hung then held them (a failed background refresh is tried again every 30 s: graph-token.ts).
 */
export const REFRESH_AHEAD_MS = 5 * 60_000

export interface TokenRequest {
  fetch: typeof fetch
  clock: Clock
  tokenUrl: string
  clientId: string
  /** `${resource}/.default`; see graphScopeFor. */
  scope: string
  credential: GraphCredential
  requestTimeoutMs?: number
}

export interface IssuedToken {
  token: string
  /**
   * From here on a refresh starts; the token is still handed out until `usableUntil`. Both are
   * monotonic readings (monotonicNow): the lifetime Entra gives is a span, which a wall clock
   * stepped back would stretch.
   */
  refreshAt: number
  usableUntil: number
}

/** Asks Entra once; a refusal, a throttle, a timeout or a garbled answer throws GraphAuthError. */
export async function requestGraphToken(d: TokenRequest): Promise<IssuedToken> {
  // Expiry counts from before the request, as MSAL does: the token was minted no earlier. The
  // client assertion's iat/nbf/exp are wall times.
  const started = d.clock.now()
  const startedMono = monotonicNow(d.clock)
  const body = new URLSearchParams({
    grant_type: 'client_credentials',
    client_id: d.clientId,
    scope: d.scope,
    ...(await d.credential.authFields({
      tokenUrl: d.tokenUrl,
      clientId: d.clientId,
      now: started,
    })),
  })
  let res: Response
  let text: string
  try {
    res = await d.fetch(d.tokenUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
      },
      body,
      // As for Graph (graph-request.ts): the credential goes to the token URL and nowhere else.
      redirect: 'manual',
      signal: AbortSignal.timeout(d.requestTimeoutMs ?? TOKEN_REQUEST_TIMEOUT_MS),
    })
    text = await res.text()
  } catch (e) {
    throw GraphAuthError.network(e, d.tokenUrl, d.requestTimeoutMs ?? TOKEN_REQUEST_TIMEOUT_MS)
  }
  if (res.status !== 200) {
    const after = retryAfterMs(res.headers.get('retry-after'), d.clock.now())
    throw parseTokenError(res.status, text, after)
  }
  return readTokenResponse(text, startedMono)
}

function readTokenResponse(text: string, started: number): IssuedToken {
  let json: Record<string, unknown>
  try {
    json = JSON.parse(text) as Record<string, unknown>
  } catch {
    throw new GraphAuthError('token_response_invalid', 'token response is not JSON', false, 200)
  }
  const token = json.access_token
  const expiresIn = seconds(json.expires_in)
  if (typeof token !== 'string' || token === '' || expiresIn === undefined) {
    throw new GraphAuthError(
      'token_response_invalid',
      'token response lacks access_token or expires_in',
      false,
      200,
    )
  }
  const lifetime = expiresIn * 1000
  // A token shorter-lived than twice the offset (test fakes, unusual tenants) is still reused for half its life.
  const usableUntil = started + lifetime - Math.min(TOKEN_RENEWAL_OFFSET_MS, lifetime / 2)
  const refreshIn = seconds(json.refresh_in)
  // Not before half its use: a short-lived token (above) is not refreshed at every send.
  const refreshAt =
    refreshIn === undefined
      ? Math.max(started + (usableUntil - started) / 2, usableUntil - REFRESH_AHEAD_MS)
      : Math.min(usableUntil, started + refreshIn * 1000)
  return { token, refreshAt, usableUntil }
}

// Entra sends numbers; some clouds and proxies send strings. MSAL accepts both.
function seconds(v: unknown): number | undefined {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : undefined
}
