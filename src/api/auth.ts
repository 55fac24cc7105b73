// Bearer-JWT verification (jose) and scope checks; the token's claims become the request's Principal (token-principal.ts), whose `tenant` and `db` claims confine every query.
import { createMiddleware } from 'hono/factory'
import { errors, type JWTPayload, type JWTVerifyOptions, jwtVerify } from 'jose'
import { type Clock, monotonicNow } from '../clock.ts'
import type { ApiAuthConfig } from '../config.ts'
import { AppError, isAppError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { AppEnv, Principal, Scope } from './context.ts'
import { keysUnavailable, remoteSigningKeys } from './signing-keys.ts'
import { toPrincipal } from './token-principal.ts'
import { INSUFFICIENT_SCOPE, INVALID_TOKEN, type Judged, refusal } from './token-refusal.ts'

/**
 * Asymmetric algorithms accepted from a JWKS. Pinned so a key set can never be used with `none` or
 * an HMAC algorithm (key confusion); jose also refuses an alg that does not fit the key type.
 */
const JWKS_ALGORITHMS = ['RS256', 'PS256', 'ES256', 'EdDSA', 'Ed25519']

/**
 * Clock skew allowed on `exp` and `nbf`: a token minted by a host whose clock runs ahead of ours is
 * not yet valid by our clock (`nbf` in the future), and one just expired by the issuer's clock may
 * still be valid by ours. 60 s as Spring Security's JwtTimestampValidator; Microsoft.IdentityModel
 * allows 300 s, but every second of leeway is a second more that a leaked token works, and hosts
 * kept by NTP are within a second of each other: a clock a minute off is a fault to fix, and the 401
 * says by how much the token's time differs from ours.
 */
export const CLOCK_TOLERANCE_SECONDS = 60

const ALL_SCOPES: ReadonlySet<string> = new Set<Scope>(['outbox:read', 'outbox:write'])
const DEV_PRINCIPAL: Principal = {
  subject: 'dev',
  scopes: ALL_SCOPES,
  tenant: null,
  database: null,
  senders: null,
}
// An empty signature is an unsecured JWT's (alg none, RFC 7519 6.1): the verifier refuses it by its
// alg, naming the algorithms accepted, where "malformed" sent its caller looking at the token's shape.
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

/** The verified claims; `previousSecret` when API_JWT_SECRET_PREVIOUS verified them (a rotation). */
export type Verify = (token: string) => Promise<{ payload: JWTPayload; previousSecret?: boolean }>

/**
 * Builds the token verifier once. Throws config_invalid when no auth is configured outside dev:
 * an open admin API must never happen by accident. Returns null in dev without auth, and says so.
 * `exp` and `nbf` are judged by `clock` (jose's `currentDate`), as the refusal's words are.
 */
export function createVerifier(
  auth: ApiAuthConfig,
  dev: boolean,
  log: Logger,
  clock: Pick<Clock, 'now' | 'monotonic'>,
): Verify | null {
  const common: JWTVerifyOptions = {
    requiredClaims: ['exp'],
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
    ...(auth.issuer ? { issuer: auth.issuer } : {}),
    ...(auth.audience ? { audience: auth.audience } : {}),
  }
  if (auth.jwtSecret && auth.jwksUrl) {
    throw new AppError('config_invalid', 'API_JWT_SECRET and API_JWKS_URL are both set: use one')
  }
  // Either key source: jose verifies against `common` and the source's algorithms; a refusal says
  // which check failed (token-refusal.ts).
  const refusing = (
    keys: Judged['keys'],
    algorithms: string[],
    check: (
      token: string,
      options: JWTVerifyOptions,
    ) => Promise<{ payload: JWTPayload; previousSecret?: boolean }>,
  ): Verify => {
    const judged: Judged = {
      keys,
      algorithms,
      issuer: auth.issuer,
      audience: auth.audience,
      clockToleranceSeconds: CLOCK_TOLERANCE_SECONDS,
    }
    return async (token) => {
      // One moment for jose's judgement and for the words of its refusal.
      const now = clock.now()
      try {
        return await check(token, { ...common, algorithms, currentDate: new Date(now) })
      } catch (e) {
        throw rejection(e, judged, now, log)
      }
    }
  }
  if (auth.jwtSecret) {
    const key = new TextEncoder().encode(auth.jwtSecret)
    const previous = auth.jwtSecretPrevious
      ? new TextEncoder().encode(auth.jwtSecretPrevious)
      : null
    return refusing('secret', ['HS256'], async (token, options) => {
      try {
        return await jwtVerify(token, key, options)
      } catch (e) {
        // During a rotation a token of the former secret fails only its signature against the new
        // one: that one failure, and nothing else, is judged again with the former secret. A token
        // that the former secret signed but that fails another check (expired, another audience)
        // is refused for that; one neither secret signed, for its signature.
        if (previous === null || !(e instanceof errors.JWSSignatureVerificationFailed)) throw e
        const r = await jwtVerify(token, previous, options).catch((again: unknown) => {
          throw again instanceof errors.JWSSignatureVerificationFailed ? e : again
        })
        return { payload: r.payload, previousSecret: true }
      }
    })
  }
  if (auth.jwksUrl) {
    if (!auth.issuer || !auth.audience) {
      throw new AppError('config_invalid', 'API_JWKS_URL needs API_JWT_ISSUER and API_JWT_AUDIENCE')
    }
    const keys = remoteSigningKeys(new URL(auth.jwksUrl), log, Date.now, () => monotonicNow(clock))
    return refusing('jwks', JWKS_ALGORITHMS, (token, options) => jwtVerify(token, keys, options))
  }
  if (!dev) {
    throw new AppError(
      'config_invalid',
      'the API needs auth: set API_JWT_SECRET or API_JWKS_URL (only `bun run dev` may run without)',
    )
  }
  log.warn('API auth is off (dev): every caller may read and write')
  return null
}

/** Verifies the bearer token of every request it guards and sets `principal`. */
export function authenticate(verify: Verify | null) {
  return createMiddleware<AppEnv>(async (c, next) => {
    if (verify === null) {
      c.set('principal', DEV_PRINCIPAL)
      return next()
    }
    const header = c.req.header('authorization')
    if (!header)
      throw new AppError('unauthorized', 'an Authorization: Bearer <JWT> header is required')
    const match = /^Bearer +(\S+)$/i.exec(header)
    if (!match) {
      throw new AppError('unauthorized', 'the Authorization header must be "Bearer <JWT>"')
    }
    const token = match[1]!
    try {
      if (!JWT_SHAPE.test(token)) {
        throw new AppError(
          'unauthorized',
          'the bearer token must be a JWT: three base64url parts',
          {
            ...INVALID_TOKEN,
            reason: 'malformed',
          },
        )
      }
      const verified = await verify(token)
      if (verified.previousSecret) {
        // Who still calls with a token of the former secret: the rotation ends once none does.
        c.get('log').info('API token signed with API_JWT_SECRET_PREVIOUS', {
          reason: 'previous_secret',
        })
      }
      c.set('principal', toPrincipal(verified.payload, token))
    } catch (e) {
      // The operator's side of a refusal: which check failed, with the request id, no claim value.
      if (isAppError(e, 'unauthorized')) {
        c.get('log').info('API token refused', {
          reason: e.details?.reason,
          claim: e.details?.claim,
        })
      }
      throw e
    }
    return next()
  })
}

/** 403 when the verified token lacks the scope; runs after authenticate. */
export const requireScope = (scope: Scope) =>
  createMiddleware<AppEnv>(async (c, next) => {
    if (!c.get('principal').scopes.has(scope)) {
      throw new AppError(
        'forbidden',
        `the token must grant ${scope}: in its scope or scp claim (space-separated), or its roles claim`,
        { scope, ...INSUFFICIENT_SCOPE },
      )
    }
    return next()
  })

function rejection(e: unknown, judged: Judged, now: number, log: Logger): AppError {
  // The key set not fetched or not usable (signing-keys.ts, which logs an outage once), or a failure
  // jose does not lay on the token: it was never judged, so not the caller's fault (503, it keeps
  // the token); the latter is logged here, as ours.
  if (isAppError(e, 'auth_unavailable')) return e
  if (!(e instanceof errors.JOSEError)) {
    log.warn('API token verification failed unexpectedly', { err: e })
    return keysUnavailable(e)
  }
  return refusal(e, judged, now)
}
