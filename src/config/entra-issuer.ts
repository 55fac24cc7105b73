// API_JWT_ISSUER and API_JWT_AUDIENCE against what Microsoft Entra ID writes in its tokens: a pair no Entra token can carry is a start-up problem, not a 401 for every request.

import { GUID } from './entra-ids.ts'
import { CLOUD_NAMES, type MicrosoftCloud } from './microsoft-cloud.ts'

const TENANT = '<tenant-id>'

/**
 * The hosts Entra writes in `iss`, by token version (Microsoft Q&A 1190472, "token issuers for the
 * sovereign clouds"): US Government v1 tokens carry the public cloud's sts.windows.net; China
 * (21Vianet) issues at login.chinacloudapi.cn but writes login.partner.microsoftonline.cn (v2);
 * Entra External ID writes `https://<tenant-id>.ciamlogin.com/<tenant-id>/v2.0` (MSAL.js #8595).
 */
const V1_HOSTS = new Set(['sts.windows.net', 'sts.chinacloudapi.cn'])
const V2_HOSTS = new Set([
  'login.microsoftonline.com',
  'login.microsoftonline.us',
  'login.partner.microsoftonline.cn',
])
/** An authority host that is no issuer's: the issuer host its tokens carry instead. */
const AUTHORITY_ONLY: Record<string, string> = {
  'login.chinacloudapi.cn': 'login.partner.microsoftonline.cn',
}
const CIAM = /^([0-9a-z-]+)\.ciamlogin\.com$/

const v1Shape = (host: string) => `https://${host}/${TENANT}/`
const v2Shape = (host: string) =>
  CIAM.test(host)
    ? `https://${TENANT}.ciamlogin.com/${TENANT}/v2.0`
    : `https://${host}/${TENANT}/v2.0`

// The exact issuers Entra writes in `iss`, the tenant as its GUID.
const V1_ISSUER = /^https:\/\/(sts\.windows\.net|sts\.chinacloudapi\.cn)\/([0-9a-f-]{36})\/$/i
const V2_ISSUER =
  /^https:\/\/(login\.microsoftonline\.com|login\.microsoftonline\.us|login\.partner\.microsoftonline\.cn|[0-9a-f-]{36}\.ciamlogin\.com)\/([0-9a-f-]{36})\/v2\.0$/i

/** The token version, issuer host and tenant of an exact Entra issuer; null for any other value. */
export function entraIssuer(iss: unknown): { version: 1 | 2; host: string; tenant: string } | null {
  if (typeof iss !== 'string') return null
  const v1 = V1_ISSUER.exec(iss)
  if (v1) return { version: 1, host: v1[1]!.toLowerCase(), tenant: v1[2]!.toLowerCase() }
  const v2 = V2_ISSUER.exec(iss)
  return v2 ? { version: 2, host: v2[1]!.toLowerCase(), tenant: v2[2]!.toLowerCase() } : null
}

/**
 * The clouds whose tokens carry issuer host `host` (of entraIssuer): sts.windows.net is the public
 * cloud's v1 issuer and the US Government's too; External ID tenants are the public cloud's.
 */
function issuerClouds(host: string): readonly MicrosoftCloud[] {
  if (host === 'sts.windows.net') return ['public', 'us-government']
  if (host === 'login.microsoftonline.us') return ['us-government']
  if (host === 'sts.chinacloudapi.cn' || host === 'login.partner.microsoftonline.cn')
    return ['china']
  return ['public']
}

/**
 * The clouds of two Entra issuer hosts, in words, when no cloud could have written both (a token of
 * a national cloud at an API expecting the public cloud's, say); null when one cloud could.
 */
export function otherClouds(got: string, want: string): { got: string; want: string } | null {
  const a = issuerClouds(got)
  const b = issuerClouds(want)
  if (a.some((c) => b.includes(c))) return null
  const words = (cs: readonly MicrosoftCloud[]) => cs.map((c) => CLOUD_NAMES[c]).join(' or ')
  return { got: words(a), want: words(b) }
}

/**
 * The problems of an issuer on Entra's hosts (any cloud, External ID) that is not the exact string
 * Entra puts in `iss` (v1 `https://sts.windows.net/{tenant}/`, v2 `https://login.microsoftonline.com/{tenant}/v2.0`
 * and their national-cloud hosts, the tenant always as its GUID), and of a v2 issuer paired with an
 * Application ID URI, which a v2 token never carries as `aud` (it carries the API's client id).
 * Any other issuer is not judged.
 */
export function entraIssuerProblems(issuer: string, audience: string | undefined): string[] {
  let url: URL
  try {
    url = new URL(issuer)
  } catch {
    return []
  }
  const host = url.hostname.toLowerCase()
  const ciam = CIAM.exec(host)
  const known = V1_HOSTS.has(host) || V2_HOSTS.has(host) || ciam || host in AUTHORITY_ONLY
  if (url.protocol !== 'https:' || !known) return []
  const v1 = V1_HOSTS.has(host)
  const segments = url.pathname.split('/').slice(1)
  const tenant = segments[0] ?? ''
  if (!GUID.test(tenant)) {
    return [
      `API_JWT_ISSUER: Entra writes the tenant id (a GUID, the Directory (tenant) ID of the app registration) in a token's iss, never a domain, common or organizations: ${v1 ? v1Shape(host) : v2Shape(AUTHORITY_ONLY[host] ?? host)}`,
    ]
  }
  const id = tenant.toLowerCase()
  const issuerHost = AUTHORITY_ONLY[host]
  if (issuerHost) {
    return [
      `API_JWT_ISSUER: ${host} issues tokens but writes another host in their iss: set API_JWT_ISSUER=https://${issuerHost}/${id}/v2.0 (v1 tokens: https://sts.chinacloudapi.cn/${id}/)`,
    ]
  }
  if (ciam && ciam[1] !== id) {
    return [
      `API_JWT_ISSUER: Entra External ID writes the tenant id as the subdomain too, never the tenant's name: set API_JWT_ISSUER=https://${id}.ciamlogin.com/${id}/v2.0`,
    ]
  }
  if (v1) {
    if (segments.length === 1) {
      return [`API_JWT_ISSUER: Entra's v1 issuer ends with /: ${v1Shape(host)}`]
    }
    if (segments.length !== 2 || segments[1] !== '' || url.search || url.hash) {
      return [`API_JWT_ISSUER: not an issuer Entra writes in tokens: v1 is ${v1Shape(host)}`]
    }
    return caseProblems(issuer, `https://${host}/${id}/`)
  }
  if (segments.length === 3 && segments[1] === 'v2.0' && segments[2] === '') {
    return [`API_JWT_ISSUER: Entra's v2 issuer has no trailing /: ${v2Shape(host)}`]
  }
  if (segments.length !== 2 || segments[1] !== 'v2.0' || url.search || url.hash) {
    return [
      `API_JWT_ISSUER: not an issuer Entra writes in tokens (the authority is not one): v2 is ${v2Shape(host)} (with /v2.0)${ciam ? '' : `, v1 ${v1Shape(host === 'login.partner.microsoftonline.cn' ? 'sts.chinacloudapi.cn' : 'sts.windows.net')}`}`,
    ]
  }
  const exact = caseProblems(issuer, `https://${host}/${id}/v2.0`)
  if (exact.length > 0) return exact
  if (audience?.toLowerCase().startsWith('api://')) {
    const app = audience.slice('api://'.length)
    const fix = GUID.test(app)
      ? `API_JWT_AUDIENCE=${app}`
      : "API_JWT_AUDIENCE to the API's client id"
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
