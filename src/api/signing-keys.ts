// API_JWKS_URL's keys for jwtVerify: jose's cached remote key set, any failure to get one a 503 auth_unavailable.
import { createRemoteJWKSet, errors, type JWTVerifyGetKey } from 'jose'
import { AppError } from '../errors.ts'

/**
 * Retry-After of an auth_unavailable. jose keeps no cooldown after a failed fetch (the next request
 * fetches again), so a short wait is enough to see the key set back.
 */
const KEYS_RETRY_AFTER_SECONDS = 5

/** The 503 of a token that could not be judged: the client keeps it and repeats the request. */
export const keysUnavailable = (cause: unknown) =>
  new AppError(
    'auth_unavailable',
    'the token could not be verified: signing keys unavailable',
    { retryAfterSeconds: KEYS_RETRY_AFTER_SECONDS },
    { cause },
  )

/**
 * The key of a token's header from the set at `url`. jose caches the set (10 min), fetches it again
 * for a kid it does not hold (at most once per 30 s cooldown, so a rotated key is found), and times a
 * fetch out after 5 s. Only "no key of that kid in a set just fetched" (or several) is the token's
 * fault, a 401; whatever else fails (the fetch refused, timed out, a non-200, not JSON, not a key
 * set, a key that does not import) leaves the token unjudged.
 */
export function remoteSigningKeys(url: URL): JWTVerifyGetKey {
  const keys = createRemoteJWKSet(url)
  return async (header, token) => {
    try {
      return await keys(header, token)
    } catch (e) {
      if (e instanceof errors.JWKSNoMatchingKey || e instanceof errors.JWKSMultipleMatchingKeys) {
        throw e
      }
      throw keysUnavailable(e)
    }
  }
}
