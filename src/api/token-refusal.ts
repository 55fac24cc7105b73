// Why a bearer token was refused, in words an operator can act on: the 401's detail names the claim or header at fault, never a claim's value.
import { errors } from 'jose'
import { AppError } from '../errors.ts'
import { audienceMismatch, type Explained, issuerMismatch } from './claim-mismatch.ts'

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

/** A whole number of seconds as the largest unit that keeps it readable: 45 s, 12 min, 3 h, 2 d. */
function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds))
  if (s < 120) return `${s} s`
  if (s < 120 * 60) return `${Math.round(s / 60)} min`
  if (s < 48 * 3600) return `${Math.round(s / 3600)} h`
  return `${Math.round(s / 86400)} d`
}
