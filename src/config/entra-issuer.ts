// API_JWT_ISSUER and API_JWT_AUDIENCE against what Microsoft Entra ID writes in its tokens: a pair no Entra token can carry is a start-up problem, not a 401 for every request.

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
const V1_HOST = 'sts.windows.net'
const V2_HOST = 'login.microsoftonline.com'
const V1_SHAPE = 'https://sts.windows.net/<tenant-id>/'
const V2_SHAPE = 'https://login.microsoftonline.com/<tenant-id>/v2.0'

// The exact issuers Entra writes in `iss` (public cloud), the tenant as its GUID.
const V1_ISSUER = /^https:\/\/sts\.windows\.net\/([0-9a-f-]{36})\/$/i
const V2_ISSUER = /^https:\/\/login\.microsoftonline\.com\/([0-9a-f-]{36})\/v2\.0$/i

/** The token version and tenant of an exact Entra issuer; null for any other value. */
export function entraIssuer(iss: unknown): { version: 1 | 2; tenant: string } | null {
  if (typeof iss !== 'string') return null
  const v1 = V1_ISSUER.exec(iss)
  if (v1) return { version: 1, tenant: v1[1]!.toLowerCase() }
  const v2 = V2_ISSUER.exec(iss)
  return v2 ? { version: 2, tenant: v2[1]!.toLowerCase() } : null
}

/**
 * The problems of an issuer on Entra's hosts (public cloud) that is not the exact string Entra puts
 * in `iss` (v1 `https://sts.windows.net/{tenant}/`, v2 `https://login.microsoftonline.com/{tenant}/v2.0`,
 * the tenant always as its GUID), and of a v2 issuer paired with an Application ID URI, which a v2
 * token never carries as `aud` (it carries the API's client id). Any other issuer is not judged.
 */
export function entraIssuerProblems(issuer: string, audience: string | undefined): string[] {
  let url: URL
  try {
    url = new URL(issuer)
  } catch {
    return []
  }
  const host = url.hostname.toLowerCase()
  if (url.protocol !== 'https:' || (host !== V1_HOST && host !== V2_HOST)) return []
  const segments = url.pathname.split('/').slice(1)
  const tenant = segments[0] ?? ''
  if (!GUID.test(tenant)) {
    return [
      `API_JWT_ISSUER: Entra writes the tenant id (a GUID, the Directory (tenant) ID of the app registration) in a token's iss, never a domain, common or organizations: ${host === V1_HOST ? V1_SHAPE : V2_SHAPE}`,
    ]
  }
  if (host === V1_HOST) {
    if (segments.length === 1) {
      return [`API_JWT_ISSUER: Entra's v1 issuer ends with /: ${V1_SHAPE}`]
    }
    if (segments.length !== 2 || segments[1] !== '' || url.search || url.hash) {
      return [`API_JWT_ISSUER: not an issuer Entra writes in tokens: v1 is ${V1_SHAPE}`]
    }
    return caseProblems(issuer, `https://${V1_HOST}/${tenant.toLowerCase()}/`)
  }
  if (segments.length === 3 && segments[1] === 'v2.0' && segments[2] === '') {
    return [`API_JWT_ISSUER: Entra's v2 issuer has no trailing /: ${V2_SHAPE}`]
  }
  if (segments.length !== 2 || segments[1] !== 'v2.0' || url.search || url.hash) {
    return [
      `API_JWT_ISSUER: not an issuer Entra writes in tokens (the authority is not one): v2 is ${V2_SHAPE} (with /v2.0), v1 ${V1_SHAPE}`,
    ]
  }
  const exact = caseProblems(issuer, `https://${V2_HOST}/${tenant.toLowerCase()}/v2.0`)
  if (exact.length > 0) return exact
  if (audience?.toLowerCase().startsWith('api://')) {
    const id = audience.slice('api://'.length)
    const fix = GUID.test(id) ? `API_JWT_AUDIENCE=${id}` : "API_JWT_AUDIENCE to the API's client id"
    return [
      `API_JWT_AUDIENCE: a v2 token (API_JWT_ISSUER ends /v2.0) carries the API's client id as aud, never the Application ID URI: set ${fix}`,
    ]
  }
  return []
}

/**
 * `iss` is compared as an exact string, and Entra writes it in lower case, the tenant GUID too: a GUID
 * pasted from the portal in capitals, or a host in capitals, would refuse every token.
 */
function caseProblems(issuer: string, exact: string): string[] {
  if (issuer === exact) return []
  return [
    `API_JWT_ISSUER: Entra writes its issuer in lower case, the tenant id too, and a token's iss must match it exactly: set API_JWT_ISSUER=${exact}`,
  ]
}
