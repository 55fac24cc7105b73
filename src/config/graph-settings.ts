// The Graph transport's settings: tenant and app, exactly one credential, endpoints, send options.
import { clientIdProblem, tenantProblem } from './entra-ids.ts'
import type { Accepted, EnvValues } from './env-schema.ts'
import { requestTimeoutProblem } from './lease-timing.ts'
import { cloudMismatch, plainHttpMicrosoftHost } from './microsoft-cloud.ts'

export interface GraphConfig {
  tenantId: string
  clientId: string
  certificate: string | null
  certificateFile: string | null
  privateKey: string | null
  privateKeyFile: string | null
  clientSecret: string | null
  assertionAlgorithm: 'PS256' | 'RS256'
  authorityUrl: string
  apiUrl: string
  saveToSentItems: boolean
  requestTimeoutMs: number
  mailboxLookup: boolean
  ambiguousSendPolicy: 'resend' | 'hold'
}

const truthy = (v: string | undefined, fallback: boolean) =>
  v === undefined ? fallback : v === 'true' || v === '1'

/**
 * The settings of a process that sends through Graph, and every problem with them; `leaseSeconds`
 * null for one that holds no lease (send-test), whose requests no lease bounds.
 */
export function graphSettings(
  e: EnvValues,
  ok: Accepted,
  leaseSeconds: number | null,
): { graph: GraphConfig; problems: string[] } {
  const problems: string[] = []
  const requestTimeoutSeconds = e.GRAPH_REQUEST_TIMEOUT_SECONDS ?? 30
  // A refused value (wrapped in quotes) is named once, as refused, not also as missing.
  const required = (name: 'GRAPH_TENANT_ID' | 'GRAPH_CLIENT_ID' | 'MAIL_FROM') => {
    if (!e[name] && ok(name)) problems.push(`${name} is required with MAIL_TRANSPORT=graph`)
  }
  required('GRAPH_TENANT_ID')
  const tenant = e.GRAPH_TENANT_ID ? tenantProblem(e.GRAPH_TENANT_ID) : null
  if (tenant) problems.push(tenant)
  required('GRAPH_CLIENT_ID')
  const client = e.GRAPH_CLIENT_ID ? clientIdProblem(e.GRAPH_CLIENT_ID) : null
  if (client) problems.push(client)
  required('MAIL_FROM')
  // Only a Graph request can outlive its lease; the file and discard transports make none.
  const timeout =
    leaseSeconds === null ? null : requestTimeoutProblem(e, ok, leaseSeconds, requestTimeoutSeconds)
  if (timeout) problems.push(timeout)
  if (ok('GRAPH_API_URL') && !namesGraphVersion(e.GRAPH_API_URL)) {
    problems.push(
      'GRAPH_API_URL: must end in the Graph API version, /v1.0 or /beta, with no query (e.g. https://graph.microsoft.com/v1.0): Graph refuses every request without it',
    )
  }
  if (ok('GRAPH_AUTHORITY_URL') && !isOrigin(e.GRAPH_AUTHORITY_URL)) {
    problems.push(
      "GRAPH_AUTHORITY_URL: must be the authority's origin, no path (e.g. https://login.microsoftonline.com): the tenant goes in GRAPH_TENANT_ID, and the token URL adds it and /oauth2/v2.0/token",
    )
  }
  const clear = (name: 'GRAPH_AUTHORITY_URL' | 'GRAPH_API_URL', what: string) => {
    const host = ok(name) ? plainHttpMicrosoftHost(e[name]) : null
    if (host) {
      problems.push(
        `${name}: must be https:// for a Microsoft host (${host}): ${what}, which plain http sends in the clear`,
      )
    }
  }
  clear('GRAPH_AUTHORITY_URL', 'the token request carries the app’s credential')
  clear('GRAPH_API_URL', 'each request carries the Graph token and the mail')
  if (ok('GRAPH_AUTHORITY_URL', 'GRAPH_API_URL')) {
    const mismatch = cloudMismatch(e.GRAPH_AUTHORITY_URL, e.GRAPH_API_URL)
    if (mismatch) problems.push(mismatch)
  }
  const cert = e.GRAPH_CERTIFICATE ?? e.GRAPH_CERTIFICATE_FILE
  const key = e.GRAPH_PRIVATE_KEY ?? e.GRAPH_PRIVATE_KEY_FILE
  if (e.GRAPH_CERTIFICATE && e.GRAPH_CERTIFICATE_FILE) {
    problems.push('GRAPH_CERTIFICATE and GRAPH_CERTIFICATE_FILE are both set: use one')
  }
  if (e.GRAPH_PRIVATE_KEY && e.GRAPH_PRIVATE_KEY_FILE) {
    problems.push('GRAPH_PRIVATE_KEY and GRAPH_PRIVATE_KEY_FILE are both set: use one')
  }
  if (e.GRAPH_CLIENT_SECRET && (cert || key)) {
    problems.push('GRAPH_CLIENT_SECRET and a certificate are both set: use one credential')
  } else if (
    !e.GRAPH_CLIENT_SECRET &&
    !(cert && key) &&
    ok(
      'GRAPH_CERTIFICATE',
      'GRAPH_CERTIFICATE_FILE',
      'GRAPH_PRIVATE_KEY',
      'GRAPH_PRIVATE_KEY_FILE',
      'GRAPH_CLIENT_SECRET',
    )
  ) {
    problems.push(
      'a Graph credential is required: GRAPH_CERTIFICATE(_FILE) with GRAPH_PRIVATE_KEY(_FILE), or GRAPH_CLIENT_SECRET',
    )
  }
  if (truthy(e.GRAPH_MAILBOX_LOOKUP, false) && !truthy(e.GRAPH_SAVE_TO_SENT_ITEMS, true)) {
    problems.push(
      'GRAPH_MAILBOX_LOOKUP=true needs GRAPH_SAVE_TO_SENT_ITEMS=true: the lookup finds sent messages in Sent Items',
    )
  }
  return {
    graph: {
      tenantId: e.GRAPH_TENANT_ID ?? '',
      clientId: e.GRAPH_CLIENT_ID ?? '',
      certificate: e.GRAPH_CERTIFICATE ?? null,
      certificateFile: e.GRAPH_CERTIFICATE_FILE ?? null,
      privateKey: e.GRAPH_PRIVATE_KEY ?? null,
      privateKeyFile: e.GRAPH_PRIVATE_KEY_FILE ?? null,
      clientSecret: e.GRAPH_CLIENT_SECRET ?? null,
      assertionAlgorithm: e.GRAPH_ASSERTION_ALGORITHM,
      authorityUrl: e.GRAPH_AUTHORITY_URL,
      apiUrl: e.GRAPH_API_URL,
      saveToSentItems: truthy(e.GRAPH_SAVE_TO_SENT_ITEMS, true),
      requestTimeoutMs: requestTimeoutSeconds * 1000,
      mailboxLookup: truthy(e.GRAPH_MAILBOX_LOOKUP, false),
      ambiguousSendPolicy: e.AMBIGUOUS_SEND_POLICY,
    },
    problems,
  }
}

/**
 * Request paths are appended to the URL (`/users/{from}/sendMail`): without the version segment
 * Graph answers 400 "Invalid version." to each, a 4xx that fails every row at once.
 */
function namesGraphVersion(url: string): boolean {
  const u = new URL(url)
  return /\/(v1\.0|beta)\/*$/.test(u.pathname) && u.search === '' && u.hash === ''
}

/**
 * The token URL is `${authority}/${tenant}/oauth2/v2.0/token`: an MSAL-style authority that holds
 * the tenant (…/contoso.onmicrosoft.com) names the tenant twice, and Entra never issues a token.
 */
function isOrigin(url: string): boolean {
  const u = new URL(url)
  return (u.pathname === '/' || u.pathname === '') && u.search === '' && u.hash === ''
}
