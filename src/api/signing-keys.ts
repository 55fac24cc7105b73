// API_JWKS_URL's keys for jwtVerify: jose's cached remote key set, held off for a while after a failed fetch; any failure to get one a 503 auth_unavailable.
import {
  createRemoteJWKSet,
  customFetch,
  errors,
  type FetchImplementation,
  type JWTVerifyGetKey,
} from 'jose'
import { AppError } from '../errors.ts'
import type { Logger } from '../log.ts'

/** Retry-After of an auth_unavailable: the hold-off after a failed fetch, when the set is asked for again. */
export const KEYS_RETRY_AFTER_SECONDS = 5
/**
 * After a failed fetch the key set is not fetched again for this long: jose keeps no cooldown after
 * a failure (the next request would fetch again), so a client retry storm during an outage would
 * reach the identity provider once per request (concurrent ones sharing a fetch).
 */
export const KEYS_HOLD_OFF_MS = KEYS_RETRY_AFTER_SECONDS * 1000

/** The 503 of a token that could not be judged: the client keeps it and repeats the request. */
export const keysUnavailable = (cause: unknown) =>
  new AppError(
    'auth_unavailable',
    'the token could not be verified: signing keys unavailable',
    { retryAfterSeconds: KEYS_RETRY_AFTER_SECONDS },
    { cause },
  )

/** A fetch not made: the last one failed less than KEYS_HOLD_OFF_MS ago (`failure`). */
class HeldOff extends Error {
  constructor(readonly failure: unknown) {
    super('the key set is not fetched again yet after a failed fetch')
  }
}

/**
 * An answer of `{"keys": []}`: no token can be verified against it, a good one included, so it is the
 * identity provider's answer that is wrong (a publication gone wrong, a tenant mid-migration), not
 * the token: an outage (503, held off, logged once), not a 401 that tells the client to get another.
 */
class EmptyKeySet extends Error {
  constructor() {
    super('the key set holds no key')
  }
}

/** Whether a 200's body is a key set without a key; anything else is jose's to judge. */
async function holdsNoKey(response: { json(): Promise<unknown> }): Promise<boolean> {
  const body: unknown = await response.json().catch(() => null)
  const keys = (body as { keys?: unknown } | null)?.keys
  return Array.isArray(keys) && keys.length === 0
}

/**
 * The key of a token's header from the set at `url`. jose caches the set (10 min), fetches it again
 * for a kid it does not hold (at most once per 30 s cooldown, so a rotated key is found), and times a
 * fetch out after 5 s. Only "no key of that kid in a set just fetched" (or several) is the token's
 * fault, a 401; whatever else fails (the fetch refused, timed out, a non-200, not JSON, not a key
 * set, a set with no key at all, a key that does not import) leaves the token unjudged. Only the
 * fetch policy is ours: for KEYS_HOLD_OFF_MS after a failure a request that needs a fetch is
 * answered from that failure (a key the cached set holds still verifies). An outage is logged when it starts and when a fetch
 * succeeds again (with how many requests it refused), not per request.
 */
export function remoteSigningKeys(
  url: URL,
  log: Logger,
  now: () => number = Date.now,
): JWTVerifyGetKey {
  let outage: { since: number; failedAt: number; failure: unknown; refused: number } | null = null
  let fetches = 0
  // A clock set back never holds fetches off for longer.
  const heldOff = (o: NonNullable<typeof outage>) => {
    const age = now() - o.failedAt
    return age >= 0 && age < KEYS_HOLD_OFF_MS
  }
  const fetchUnlessHeldOff: FetchImplementation = async (input, init) => {
    if (outage && heldOff(outage)) throw new HeldOff(outage.failure)
    fetches++
    const response = await fetch(input, init)
    if (response.status === 200 && (await holdsNoKey(response.clone()))) throw new EmptyKeySet()
    return response
  }
  const keys = createRemoteJWKSet(url, { [customFetch]: fetchUnlessHeldOff })
  // A request during which a fetch was made and that then found its key (or the set lacking it): the set is back.
  const fetchedSince = (before: number) => {
    if (outage === null || fetches === before) return
    log.info('API signing keys fetched again after an outage', {
      refused: outage.refused,
      ms: now() - outage.since,
    })
    outage = null
  }
  return async (header, token) => {
    const before = fetches
    try {
      const key = await keys(header, token)
      fetchedSince(before)
      return key
    } catch (e) {
      if (e instanceof errors.JWKSNoMatchingKey || e instanceof errors.JWKSMultipleMatchingKeys) {
        fetchedSince(before)
        throw e
      }
      if (!(e instanceof HeldOff)) {
        if (outage === null) {
          outage = { since: now(), failedAt: now(), failure: e, refused: 0 }
          log.warn(
            `API signing keys unavailable; answering 503 auth_unavailable, fetching them again at most every ${KEYS_RETRY_AFTER_SECONDS} s`,
            { err: e },
          )
        } else {
          outage.failedAt = now()
          outage.failure = e
        }
      }
      if (outage) outage.refused++
      throw keysUnavailable(e instanceof HeldOff ? e.failure : e)
    }
  }
}
