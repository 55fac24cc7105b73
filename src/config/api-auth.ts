// The API's bearer-token settings: HS256 secrets (with a former one during a rotation) or a JWKS URL pinned by issuer and audience.
import { entraIssuerProblems } from './entra-issuer.ts'
import type { Accepted, EnvValues } from './env-schema.ts'
import { plainHttpMicrosoftHost } from './microsoft-cloud.ts'

export interface ApiAuthConfig {
  jwtSecret: string | null
  /** A former API_JWT_SECRET still accepted while callers move to the new one (a rotation). */
  jwtSecretPrevious?: string | null
  jwksUrl: string | null
  issuer: string | null
  audience: string | null
}

/**
 * Every problem of the API's auth settings. `servesApi`: this process serves the /v1 API (`serve`,
 * role all or api), which needs auth except under dev.
 */
export function apiAuthProblems(
  e: EnvValues,
  ok: Accepted,
  opts: { dev?: boolean; role?: 'all' | 'worker' | 'api'; servesApi?: boolean },
): string[] {
  const problems: string[] = []
  if (e.API_JWT_SECRET && e.API_JWKS_URL) {
    problems.push('API_JWT_SECRET and API_JWKS_URL are both set: use one')
  }
  if (e.API_JWT_SECRET_PREVIOUS && !e.API_JWT_SECRET && ok('API_JWT_SECRET')) {
    problems.push(
      'API_JWT_SECRET_PREVIOUS needs API_JWT_SECRET: it is the former secret, still accepted while callers move to the new one',
    )
  }
  if (e.API_JWT_SECRET_PREVIOUS && e.API_JWT_SECRET_PREVIOUS === e.API_JWT_SECRET) {
    problems.push('API_JWT_SECRET_PREVIOUS is API_JWT_SECRET: set the new secret in API_JWT_SECRET')
  }
  if (
    opts.servesApi &&
    !opts.dev &&
    opts.role !== 'worker' &&
    !e.API_JWT_SECRET &&
    !e.API_JWKS_URL &&
    ok('API_JWT_SECRET', 'API_JWKS_URL')
  ) {
    problems.push(
      'the API needs auth: set API_JWT_SECRET or API_JWKS_URL (or run `serve --role worker` for health and metrics only)',
    )
  }
  const clear = e.API_JWKS_URL ? plainHttpMicrosoftHost(e.API_JWKS_URL) : null
  if (clear) {
    problems.push(
      `API_JWKS_URL: must be https:// for a Microsoft host (${clear}): keys fetched over plain http can be replaced on the way, and a token signed with such a key would be taken`,
    )
  }
  if (e.API_JWKS_URL && (!e.API_JWT_ISSUER || !e.API_JWT_AUDIENCE)) {
    problems.push('API_JWKS_URL needs API_JWT_ISSUER and API_JWT_AUDIENCE to pin the tokens')
  }
  if (e.API_JWT_ISSUER) problems.push(...entraIssuerProblems(e.API_JWT_ISSUER, e.API_JWT_AUDIENCE))
  return problems
}
