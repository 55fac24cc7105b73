// GRAPH_TENANT_ID: a tenant's id or one of its domains is taken; "common" and its kin, and a URL, which no app-only token comes from, are refused at start saying what to set.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { randomBytes, randomUUID } from 'node:crypto'
import { loadConfig } from '../../src/config.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const tenant = randomUUID()
const graph = {
  DATABASE_URL: 'postgres://u:p@db/app',
  MAIL_TRANSPORT: 'graph',
  GRAPH_CLIENT_ID: randomUUID(),
  GRAPH_CLIENT_SECRET: `cs-${randomBytes(12).toString('hex')}`,
  MAIL_FROM: 'notifications@example.com',
}

function tenantProblems(value: string): string[] {
  try {
    loadConfig({ ...graph, GRAPH_TENANT_ID: value })
    return []
  } catch (e) {
    return (e as { details: { problems: string[] } }).details.problems
  }
}

describe('GRAPH_TENANT_ID', () => {
  test('the Directory (tenant) ID, or a domain of the tenant, is taken', () => {
    expect(tenantProblems(tenant)).toEqual([])
    expect(tenantProblems(tenant.toUpperCase())).toEqual([])
    expect(tenantProblems('contoso.onmicrosoft.com')).toEqual([])
  })

  test('common, organizations and consumers name no tenant: refused, naming where the id is', () => {
    for (const v of ['common', 'organizations', 'Consumers']) {
      expect(tenantProblems(v)).toEqual([
        `GRAPH_TENANT_ID: "${v.toLowerCase()}" names no tenant, and an app-only token comes from one: set the Directory (tenant) ID of the app registration's Overview page (a GUID), or a domain of the tenant (contoso.onmicrosoft.com)`,
      ])
    }
  })

  test('a URL (the authority, a token or metadata URL copied whole) is refused: the id alone', () => {
    for (const v of [
      `https://login.microsoftonline.com/${tenant}`,
      `https://login.microsoftonline.com/${tenant}/v2.0/.well-known/openid-configuration`,
    ]) {
      expect(tenantProblems(v)).toEqual([
        "GRAPH_TENANT_ID: must be the tenant's id alone (a GUID, or a domain of the tenant such as contoso.onmicrosoft.com), not a URL: the token URL is made of GRAPH_AUTHORITY_URL, this id and /oauth2/v2.0/token",
      ])
    }
  })
})
