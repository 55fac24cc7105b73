// Graph token check: fetches a token as serve would, and reads from it the mail roles the app was granted.
import { decodeJwt } from 'jose'
import { systemClock } from '../clock.ts'
import type { Config } from '../config.ts'
import { silentLogger } from '../log.ts'
import { entraRefusalHint } from '../transport/entra-refusal-hints.ts'
import type { GraphCredential } from '../transport/graph-credential.ts'
import { createTokenSource } from '../transport/graph-token.ts'
import { GraphAuthError } from '../transport/graph-token-error.ts'
import { graphScopeFor, tokenUrlFor } from '../transport/token-endpoint.ts'
import { describe, type Findings } from './findings.ts'

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
      const hint = entraRefusalHint(e.code)
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
