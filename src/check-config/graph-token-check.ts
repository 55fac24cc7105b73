// Graph token check: fetches a token as serve would, and reads from it the mail roles the app was granted.
import { decodeJwt } from 'jose'
import { systemClock } from '../clock.ts'
import type { Config } from '../config.ts'
import { silentLogger } from '../log.ts'
import type { GraphCredential } from '../transport/graph-credential.ts'
import { createTokenSource, graphScopeFor, tokenUrlFor } from '../transport/graph-token.ts'
import { GraphAuthError } from '../transport/graph-token-error.ts'
import { describe, type Findings } from './findings.ts'

// Hints for the Entra errors a first deploy meets; graph.md §1.3 lists the codes.
const TOKEN_HINTS: Record<string, string> = {
  AADSTS700027:
    'the certificate is not registered on the app: upload GRAPH_CERTIFICATE to the app registration',
  AADSTS7000215: 'the client secret is wrong: copy the secret value, not its id',
  AADSTS7000222: 'the client secret has expired: create a new one',
  AADSTS700016: 'no such app in this tenant: check GRAPH_CLIENT_ID and GRAPH_TENANT_ID',
  AADSTS90002: 'no such tenant: check GRAPH_TENANT_ID',
  AADSTS7000112: 'the app registration is disabled',
  // The assertion's nbf/exp are this machine's time; Entra allows a few minutes either way.
  AADSTS700024:
    "the client assertion's time window, read from this machine's clock, is not Entra's time: set the clock right (NTP)",
}

export async function checkGraphToken(
  config: Config,
  credential: GraphCredential,
  fetchFn: typeof fetch,
  timeoutMs: number,
) {
  const out: Findings & { token?: string } = { problems: [], checks: [] }
  const graph = config.graph!
  const tokens = createTokenSource({
    fetch: fetchFn,
    clock: systemClock,
    log: silentLogger,
    tokenUrl: tokenUrlFor(graph.authorityUrl, graph.tenantId),
    clientId: graph.clientId,
    scope: graphScopeFor(graph.apiUrl),
    credential,
    requestTimeoutMs: timeoutMs,
  })
  let token: string
  try {
    token = await tokens.getToken()
  } catch (e) {
    if (e instanceof GraphAuthError) {
      const hint = TOKEN_HINTS[e.code]
      // graph.md §1.2: a tenant may refuse x5t#S256 (PS256) for a certificate it has registered.
      const otherForm =
        e.code === 'AADSTS700027' && graph.assertionAlgorithm === 'PS256'
          ? '; if it is there, try GRAPH_ASSERTION_ALGORITHM=RS256 (the SHA-1 x5t some tenants still require)'
          : ''
      out.problems.push(
        `Graph token: ${e.code}: ${e.message}${hint ? ` (${hint}${otherForm})` : ''}`,
      )
    } else {
      out.problems.push(`Graph token: ${describe(e)}`)
    }
    return out
  }
  out.checks.push(`Graph token: issued by ${new URL(graph.authorityUrl).host}`)
  out.token = token
  const roles = tokenRoles(token)
  if (roles === null) {
    out.checks.push('Graph token: not a readable JWT; permissions not inspected')
    return out
  }
  // RBAC for Applications grants live in Exchange, not in the token: a missing role is only a warning.
  if (!roles.includes('Mail.Send')) {
    out.checks.push(
      'warning: the token carries no Mail.Send role: fine with Exchange RBAC for Applications, otherwise grant Mail.Send and admin consent',
    )
  } else {
    out.checks.push(`Graph token: roles ${roles.join(', ')}`)
  }
  // The lookup filters on an extended property, which Mail.ReadBasic does not expose.
  if (graph.mailboxLookup && !roles.some((r) => r === 'Mail.Read' || r === 'Mail.ReadWrite')) {
    out.checks.push(
      'warning: GRAPH_MAILBOX_LOOKUP=true but the token carries no Mail.Read role (fine with Exchange RBAC for Applications)',
    )
  }
  return out
}

function tokenRoles(token: string): string[] | null {
  try {
    const roles = decodeJwt(token).roles
    return Array.isArray(roles) ? roles.filter((r): r is string => typeof r === 'string') : []
  } catch {
    return null
  }
}
