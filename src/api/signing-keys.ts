// API_JWKS_URL's keys for jwtVerify: jose's cached remote key set, held off for a while after a failed fetch, the last set fetched serving for up to 12 h while none can be; any other failure to get a key a 503 auth_unavailable.
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  type ExportedJWKSCache,
  errors,
  type FetchImplementation,
  type JSONWebKeySet,
  type JWKSCacheInput,
  type JWTVerifyGetKey,
  jwksCache,
} from 'jose'
import { AppError } from '../errors.ts'
import { createFailureRun, type FailureRun } from '../failure-run.ts'
import type { Logger } from '../log.ts'
import { EmptyKeySet, HeldOff, holdsNoKey } from './key-set-fetch-failures.ts'

/** Retry-After of an auth_unavailable: the hold-off after a failed fetch, when the set is asked for again. */
export const KEYS_RETRY_AFTER_SECONDS = 5
/**
 * After a failed fetch the key set is not fetched again for this long: jose keeps no cooldown after
 * a failure (the next request would fetch again), so a client retry storm during an outage would
 * reach the identity provider once per request (concurrent ones sharing a fetch).
 */
export const KEYS_HOLD_OFF_MS = KEYS_RETRY_AFTER_SECONDS * 1000
/**
 * Stale-if-error: while the key set cannot be fetched, the last one fetched keeps verifying tokens
 * until it is this old (counted from that fetch), then 503. Bounded because a key the provider has
 * withdrawn (rotated out after a leak) stays trusted as long as the stale set serves, and whoever
 * can block the fetch chooses how long that is; 12 h is as long as Microsoft's own token middleware
 * (Microsoft.IdentityModel, 12 h between refreshes) trusts a fetched set anyway. Entra's access
 * tokens live 60-90 min, so a longer outage of the provider itself leaves few tokens to verify.
 */
export const KEYS_STALE_MAX_MS = 12 * 3_600_000

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
 * set, a set with no key at all, a key that does not import) leaves the token unjudged. The fetch
 * policy is ours: for KEYS_HOLD_OFF_MS after a failure a request that needs a fetch is answered from
 * that failure, and meanwhile the last set fetched verifies a kid it holds until it is
 * KEYS_STALE_MAX_MS old (stale-if-error); anything else is a 503. An outage is logged as a run (its
 * start, a change of cause, every 5 minutes), once more when the cached set stops serving, and when a
 * fetch succeeds again (with how many requests it refused and how many the stale set served), not
 * per request.
 */
export function remoteSigningKeys(
  url: URL,
  log: Logger,
  /** Wall time, as jose's cache stamps a fetch (`uat`): the hold-off and the stale set's age. */
  now: () => number = Date.now,
  /** Monotonic readings for the outage's run (its reminder): a step of the wall clock is no span. */
  monotonic: () => number = () => performance.now(),
): JWTVerifyGetKey {
  let outage: {
    /** A monotonic reading: the outage's length, logged at its end, is no wall-clock span. */
    since: number
    failedAt: number
    failure: unknown
    /** Whether the cached set serves (stale-if-error): the run's lines say which. */
    serving: boolean
    run: FailureRun
    refused: number
    servedStale: number
  } | null = null
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
  // jose writes each set it fetched and could use here, with the time of that fetch.
  const cache: Partial<ExportedJWKSCache> = {}
  const keys = createRemoteJWKSet(url, {
    [customFetch]: fetchUnlessHeldOff,
    [jwksCache]: cache as JWKSCacheInput,
  })
  let cachedLocal: { jwks: JSONWebKeySet; get: JWTVerifyGetKey } | null = null
  /** The last set fetched while it may serve (not yet KEYS_STALE_MAX_MS old), else null. */
  const staleSet = (): JWTVerifyGetKey | null => {
    if (cache.jwks === undefined || cache.uat === undefined) return null
    const age = now() - cache.uat
    if (age < 0 || age >= KEYS_STALE_MAX_MS) return null
    if (cachedLocal?.jwks !== cache.jwks) {
      cachedLocal = { jwks: cache.jwks, get: createLocalJWKSet(cache.jwks) }
    }
    return cachedLocal.get
  }
  const hours = KEYS_STALE_MAX_MS / 3_600_000
  const outageRun = (serving: boolean) =>
    createFailureRun({
      log,
      clock: { now, monotonic },
      msg: serving
        ? `API signing keys unavailable; verifying with the cached key set until it is ${hours} h old, fetching it again at most every ${KEYS_RETRY_AFTER_SECONDS} s`
        : `API signing keys unavailable; answering 503 auth_unavailable, fetching them again at most every ${KEYS_RETRY_AFTER_SECONDS} s`,
      fields:
        cache.uat === undefined
          ? {}
          : { cachedKeysServeUntil: new Date(cache.uat + KEYS_STALE_MAX_MS).toISOString() },
    })
  /**
   * A request that found no usable key set: `fetched` when its own fetch failed (logged as the
   * run's failure, and the start of a new hold-off), else answered from the remembered failure.
   * When the cached set stops serving mid-outage, a run saying so starts.
   */
  const unavailable = (failure: unknown, fetched: boolean, serving: boolean) => {
    if (outage === null) {
      if (!fetched) return
      outage = {
        since: monotonic(),
        failedAt: now(),
        failure,
        serving,
        run: outageRun(serving),
        refused: 0,
        servedStale: 0,
      }
      outage.run.failed(failure)
      return
    }
    // Requests waiting on the same fetch (jose shares one) all get its error: one failure.
    if (fetched && failure === outage.failure) fetched = false
    if (fetched) {
      outage.failedAt = now()
      outage.failure = failure
    }
    if (outage.serving && !serving) {
      outage.serving = false
      outage.run = outageRun(false)
      outage.run.failed(failure)
    } else if (fetched) {
      outage.run.failed(failure)
    }
  }
  // A request during which a fetch was made and that then found its key (or the set lacking it): the set is back.
  const fetchedSince = (before: number) => {
    if (outage === null || fetches === before) return
    log.info('API signing keys fetched again after an outage', {
      refused: outage.refused,
      servedStale: outage.servedStale,
      ms: Math.round(monotonic() - outage.since),
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
      const failure = e instanceof HeldOff ? e.failure : e
      const stale = staleSet()
      unavailable(failure, !(e instanceof HeldOff), stale !== null)
      if (stale !== null) {
        try {
          const key = await stale(header, token)
          if (outage) outage.servedStale++
          return key
        } catch {
          // No key of that kid in the cached set (or several): the set not fetched may hold it.
        }
      }
      if (outage) outage.refused++
      throw keysUnavailable(failure)
    }
  }
}
