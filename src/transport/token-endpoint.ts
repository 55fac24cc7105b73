// Where a Graph token is asked for: Entra's token URL for a tenant, and the scope naming the Graph host.

export function tokenUrlFor(authorityUrl: string, tenantId: string): string {
  return `${authorityUrl.replace(/\/+$/, '')}/${encodeURIComponent(tenantId)}/oauth2/v2.0/token`
}

/** The resource is the Graph host the API URL points at, so sovereign clouds get their own. */
export function graphScopeFor(apiUrl: string): string {
  return `${new URL(apiUrl).origin}/.default`
}
