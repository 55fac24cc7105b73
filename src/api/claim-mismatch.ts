// Why a verified token's iss or aud is not the expected one, in Entra's terms: another cloud, tenant or token version, a Graph token, an audience written the other way.
import type { JWTPayload } from 'jose'
import { entraIssuer, otherClouds } from '../config/entra-issuer.ts'

/** A refusal's reason (the log line's), its detail (the 401's) and the claim at fault. */
export type Explained = [reason: string, detail: string, claim?: string]

export function issuerMismatch(payload: JWTPayload, expected: string | null): Explained {
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

export function audienceMismatch(payload: JWTPayload, expected: string | null): Explained {
  // RFC 7519 4.1.3: a string or a list of strings. A signed token may hold anything else (a number,
  // null in a list): its audiences are the strings it names, and no string is none of ours.
  const aud: unknown = payload.aud
  const got = (Array.isArray(aud) ? aud : [aud]).filter((a): a is string => typeof a === 'string')
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
