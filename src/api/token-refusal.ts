// Why a bearer token was refused, in words an operator can act on: the 401's detail names the claim or header at fault, never a claim's value.
import { errors, type JWTPayload } from 'jose'
import { entraIssuer, otherClouds } from '../config/entra-issuer.ts'
import { AppError } from '../errors.ts'

/** What the verifier expected, for the words of a refusal. */
export interface Judged {
  /** `secret`: HS256 with API_JWT_SECRET; `jwks`: API_JWKS_URL's keys. */
  keys: 'secret' | 'jwks'
  algorithms: string[]
  issuer: string | null
  audience: string | null
  clockToleranceSeconds: number
}

/**
 * In the details of a 401 for a token that was sent and refused (not for a request without one):
 * its WWW-Authenticate carries RFC 6750's error="invalid_token", which tells an OAuth client to get
 * a new token rather than to authenticate for the first time.
 */
export const INVALID_TOKEN = { bearerError: 'invalid_token' } as const

/**
 * In the details of a 403 for a verified token that lacks the scope (only then: another 403, e.g. a
 * tenant the token may not name, must not send a client after a wider token): error="insufficient_scope".
 */
export const INSUFFICIENT_SCOPE = { bearerError: 'insufficient_scope' } as const

/**
 * The 401 of a token jose refused, its `reason` and `claim` in details for the log line. Issuer and
 * audience are judged only after the signature verified, so their hints rest on claims the trusted
 * issuer signed; the detail still echoes none of them (nor the token): it may reach a log or a ticket.
 * `now` (ms): the moment jose judged the token at, which the words of a time refusal count from.
 */
export function refusal(e: errors.JOSEError, judged: Judged, now: number): AppError {
  const [reason, detail, claim] = explain(e, judged, Math.floor(now / 1000))
  return new AppError(
    'unauthorized',
    detail,
    { ...INVALID_TOKEN, reason, ...(claim ? { claim } : {}) },
    { cause: e },
  )
}

type Explained = [reason: string, detail: string, claim?: string]

function explain(e: errors.JOSEError, judged: Judged, nowSeconds: number): Explained {
  const skew = `${judged.clockToleranceSeconds} s of clock skew allowed`
  if (e instanceof errors.JWTExpired || e instanceof errors.JWTClaimValidationFailed) {
    const { claim, reason, payload } = e
    if (reason === 'missing') {
      return ['claim_missing', `the token has no ${claim} claim, which ${requiredBy(claim)}`, claim]
    }
    if (reason === 'invalid') {
      return ['claim_invalid', `the token's ${claim} claim is not a number (of seconds)`, claim]
    }
    if (claim === 'exp' && typeof payload.exp === 'number') {
      const ago = duration(nowSeconds - payload.exp)
      return [
        'expired',
        `the token expired ${ago} ago by this server's clock (${skew}): get a new one`,
        claim,
      ]
    }
    if (claim === 'nbf' && typeof payload.nbf === 'number') {
      const ahead = duration(payload.nbf - nowSeconds)
      return [
        'not_yet_valid',
        `the token is not valid yet: its nbf is ${ahead} ahead of this server's clock (${skew}); the clock of the host that minted it, or this server's, is wrong`,
        claim,
      ]
    }
    if (claim === 'iss') return issuerMismatch(payload, judged.issuer)
    if (claim === 'aud') return audienceMismatch(payload, judged.audience)
    return ['claim_mismatch', `the token's ${claim} claim does not match`, claim]
  }
  if (e instanceof errors.JOSEAlgNotAllowed) {
    const by = judged.keys === 'secret' ? 'API_JWT_SECRET' : "API_JWKS_URL's keys"
    return [
      'alg_not_allowed',
      `the token's alg header is not one this API accepts: ${judged.algorithms.join(', ')} (signed with ${by})`,
    ]
  }
  if (e instanceof errors.JWKSNoMatchingKey) {
    return [
      'unknown_kid',
      "API_JWKS_URL's key set (fetched at most 30 s ago) holds no key for the token's kid and alg: the token was signed by another identity provider or tenant, or with a key it has withdrawn",
    ]
  }
  if (e instanceof errors.JWKSMultipleMatchingKeys) {
    return [
      'ambiguous_key',
      "several keys of API_JWKS_URL's set fit the token's header: the token must name its key (kid)",
    ]
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) {
    return [
      'signature',
      judged.keys === 'secret'
        ? "the token's signature does not verify: it was signed with another secret than API_JWT_SECRET, or altered"
        : "the token's signature does not verify against the key of its kid: it was altered, or signed with another key",
    ]
  }
  if (e instanceof errors.JWSInvalid || e instanceof errors.JWTInvalid) {
    return [
      'malformed',
      'the token is not a well-formed JWT: its header and claims must be base64url JSON objects and its header must name an alg',
    ]
  }
  return ['invalid', `the token is not valid (${e.code})`]
}

function requiredBy(claim: string): string {
  if (claim === 'iss') return 'API_JWT_ISSUER requires'
  if (claim === 'aud') return 'API_JWT_AUDIENCE requires'
  return 'this API requires (every token must expire)'
}

function issuerMismatch(payload: JWTPayload, expected: string | null): Explained {
  const got = entraIssuer(payload.iss)
  const want = entraIssuer(expected)
  // A tenant lives in one cloud: a token of another cloud is another tenant's too, and the fix is
  // the cloud (the API's settings, or where the client asks for its token).
  const clouds = got && want ? otherClouds(got.host, want.host) : null
  if (clouds) {
    return [
      'issuer_entra_cloud',
      `the token's iss is ${clouds.got}'s and API_JWT_ISSUER ${clouds.want}'s: a token is never valid in another Microsoft cloud; the client must ask the API's own tenant, in API_JWT_ISSUER's cloud, for its token, or, if the API's app registration is in the token's cloud, set API_JWT_ISSUER and API_JWKS_URL to that cloud's issuer and keys`,
      'iss',
    ]
  }
  if (got && want && got.tenant !== want.tenant) {
    return [
      'issuer_entra_tenant',
      "the token's iss is another Entra tenant (directory) than API_JWT_ISSUER's: get the token from the API's own tenant",
      'iss',
    ]
  }
  if (got?.version === 1 && want?.version === 2) {
    return [
      'issuer_entra_v1',
      "the token's iss is Entra's v1 issuer (https://sts.windows.net/<tenant-id>/) and API_JWT_ISSUER the v2 one: set accessTokenAcceptedVersion to 2 in the manifest of the API's app registration (api.requestedAccessTokenVersion in the newer manifest), or API_JWT_ISSUER to the v1 issuer and API_JWT_AUDIENCE to the Application ID URI",
      'iss',
    ]
  }
  if (got?.version === 2 && want?.version === 1) {
    return [
      'issuer_entra_v2',
      "the token's iss is Entra's v2 issuer (https://login.microsoftonline.com/<tenant-id>/v2.0) and API_JWT_ISSUER the v1 one: the API's app registration asks for v2 tokens (accessTokenAcceptedVersion 2), so set API_JWT_ISSUER to the v2 issuer and API_JWT_AUDIENCE to the API's client id",
      'iss',
    ]
  }
  if (typeof payload.iss === 'string' && expected !== null) {
    if (payload.iss.replace(/\/$/, '') === expected.replace(/\/$/, '')) {
      return [
        'issuer_trailing_slash',
        "the token's iss and API_JWT_ISSUER differ only in a trailing /: the issuer must match exactly",
        'iss',
      ]
    }
  }
  return [
    'issuer',
    "the token's iss is not API_JWT_ISSUER: a token of another identity provider or tenant, or API_JWT_ISSUER is not the issuer's exact string",
    'iss',
  ]
}

// Microsoft Graph's audiences: its URL and its application id.
const GRAPH_AUDIENCES = new Set([
  'https://graph.microsoft.com',
  '00000003-0000-0000-c000-000000000000',
])

function audienceMismatch(payload: JWTPayload, expected: string | null): Explained {
  const got = typeof payload.aud === 'string' ? [payload.aud] : (payload.aud ?? [])
  if (got.some((a) => GRAPH_AUDIENCES.has(a.replace(/\/$/, '')))) {
    return [
      'audience_graph',
      "the token's aud is Microsoft Graph: the client asked for a Graph token; ask for scope=api://<api-client-id>/.default",
      'aud',
    ]
  }
  if (expected !== null && got.includes(`api://${expected}`)) {
    return [
      'audience_app_id_uri',
      "the token's aud is the Application ID URI (api://<client-id>) and API_JWT_AUDIENCE the bare client id: a v1 token carries the audience as the client named it (scope=api://<client-id>/.default), a v2 token always the client id; set API_JWT_AUDIENCE to the Application ID URI, or issue v2 tokens",
      'aud',
    ]
  }
  if (expected?.startsWith('api://') && got.includes(expected.slice('api://'.length))) {
    return [
      'audience_client_id',
      "the token's aud is the bare client id and API_JWT_AUDIENCE the Application ID URI (api://<client-id>): a v2 token always carries the client id, a v1 one the audience as the client named it (scope=<client-id>/.default); set API_JWT_AUDIENCE to the client id, or have the client ask for scope=api://<client-id>/.default",
      'aud',
    ]
  }
  return [
    'audience',
    "the token's aud is not API_JWT_AUDIENCE: it was issued for another API",
    'aud',
  ]
}

/** A whole number of seconds as the largest unit that keeps it readable: 45 s, 12 min, 3 h, 2 d. */
function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds))
  if (s < 120) return `${s} s`
  if (s < 120 * 60) return `${Math.round(s / 60)} min`
  if (s < 48 * 3600) return `${Math.round(s / 3600)} h`
  return `${Math.round(s / 86400)} d`
}
