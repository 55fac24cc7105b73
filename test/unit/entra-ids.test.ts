// GRAPH_TENANT_ID and GRAPH_CLIENT_ID: a tenant's id or one of its domains, and an app's id, are taken; "common" and its kin, a URL, a name with no domain suffix, a client id that is no GUID and a GUID mistyped, which no token comes from, are refused at start saying what to set and where to find it.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { randomBytes, randomUUID } from 'node:crypto'
import { checkConfig } from '../../src/check-config.ts'
import { loadConfig } from '../../src/config.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const tenant = randomUUID()
const client = randomUUID()
const graph = {
  DATABASE_URL: 'postgres://u:p@db/app',
  MAIL_TRANSPORT: 'graph',
  GRAPH_TENANT_ID: tenant,
  GRAPH_CLIENT_ID: client,
  GRAPH_CLIENT_SECRET: `cs-${randomBytes(12).toString('hex')}`,
  MAIL_FROM: 'notifications@example.com',
}

function problemsWith(name: 'GRAPH_TENANT_ID' | 'GRAPH_CLIENT_ID', value: string): string[] {
  try {
    loadConfig({ ...graph, [name]: value })
    return []
  } catch (e) {
    return (e as { details: { problems: string[] } }).details.problems
  }
}
const tenantProblems = (value: string) => problemsWith('GRAPH_TENANT_ID', value)
const clientIdProblems = (value: string) => problemsWith('GRAPH_CLIENT_ID', value)

describe('GRAPH_TENANT_ID', () => {
  test('the Directory (tenant) ID, or a domain of the tenant, is taken', () => {
    expect(tenantProblems(tenant)).toEqual([])
    expect(tenantProblems(tenant.toUpperCase())).toEqual([])
    // The initial domain, a custom one (a subdomain, a long suffix, punycode or Unicode letters).
    for (const domain of [
      'contoso.onmicrosoft.com',
      'Contoso.com',
      'mail.contoso.co.uk',
      'xn--mnchen-3ya.de',
      'münchen.de',
      'contoso-eu.onmicrosoft.us',
    ]) {
      expect([domain, tenantProblems(domain)]).toEqual([domain, []])
    }
  })

  test('a name without its domain suffix, an address or an IP address is refused: Entra knows a tenant by its id or a whole domain (AADSTS90002, AADSTS900023)', () => {
    const notDomain =
      "GRAPH_TENANT_ID: is neither a tenant id (a GUID) nor a domain of the tenant: set the Directory (tenant) ID shown on the app registration's Overview page in the Entra admin center (App registrations → the app → Overview), or a verified domain written whole, with its suffix (contoso.onmicrosoft.com, not contoso), as the admin center lists them under Domain names"
    expect(
      ['contoso', 'Contoso_Ltd', 'contoso.', '.contoso.com', 'contoso..com', '10.0.0.1'].map(
        tenantProblems,
      ),
    ).toEqual(Array(6).fill([notDomain]))
    // A name of several words dashed apart, as long as a GUID: a name still, not a GUID mistyped.
    expect(
      ['contoso-holdings-europe-uk-ltd', 'fabrikam-north-america-east-region'].map(tenantProblems),
    ).toEqual(Array(2).fill([notDomain]))
    expect(tenantProblems('admin@contoso.onmicrosoft.com')).toEqual([
      "GRAPH_TENANT_ID: holds an @ (a user's address?): set the tenant's domain alone, the part after the @ (contoso.onmicrosoft.com), or its Directory (tenant) ID shown on the app registration's Overview page in the Entra admin center",
    ])
  })

  test('a GUID mistyped (a digit short, braces, no dashes, all zeros) is refused, saying what the id is written as', () => {
    const guid = (what: string) =>
      `GRAPH_TENANT_ID: ${what}: the Directory (tenant) ID is a GUID, 8-4-4-4-12 hexadecimal digits (as the app registration's Overview page in the Entra admin center shows it)`
    expect(tenantProblems(tenant.slice(0, -1))).toEqual([
      guid('is not a GUID (a digit more or less, or a character that is no hexadecimal digit)'),
    ])
    expect(tenantProblems(`${tenant.slice(0, -1)}g`)).toEqual([
      guid('is not a GUID (a digit more or less, or a character that is no hexadecimal digit)'),
    ])
    expect(tenantProblems(`{${tenant}}`)).toEqual([guid(`write it without braces, ${tenant}`)])
    expect(tenantProblems(tenant.replaceAll('-', ''))).toEqual([
      guid('write it with its dashes, after the 8th, 12th, 16th and 20th digit'),
    ])
    expect(tenantProblems('00000000-0000-0000-0000-000000000000')).toEqual([
      guid(
        "is the all-zero GUID, a placeholder (fly.toml's), which Entra refuses (AADSTS90002): set your tenant's",
      ),
    ])
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

const WHERE =
  "the Application (client) ID is a GUID, 8-4-4-4-12 hexadecimal digits, shown on the app registration's Overview page in the Entra admin center (App registrations → the app → Overview)"

describe('GRAPH_CLIENT_ID', () => {
  test('the Application (client) ID is taken, in either case', () => {
    expect(clientIdProblems(client)).toEqual([])
    expect(clientIdProblems(client.toUpperCase())).toEqual([])
  })

  test("the app's name, a secret's value or a URI is refused, saying where the id is and never quoting the value (it may be the secret)", async () => {
    // Taken, each failed at the first token request: AADSTS700016 (no such app), at every send.
    const secretValue = `Abc8Q~${randomBytes(20).toString('base64url')}`
    const refused = `GRAPH_CLIENT_ID: is not a GUID: ${WHERE}; not the app's name, nor a client secret's value`
    expect(
      ['outbox-mailer', secretValue, `api://${client}`, client.slice(1), `${client}x`].map(
        clientIdProblems,
      ),
    ).toEqual(Array(5).fill([refused]))
    const report = await checkConfig(
      {
        ...graph,
        API_JWT_SECRET: randomBytes(32).toString('base64url'),
        GRAPH_CLIENT_ID: secretValue,
      },
      { connect: false },
    )
    expect(report.problems).toEqual([refused])
    expect(JSON.stringify(report)).not.toContain(secretValue)
  })

  test('a GUID in braces, without dashes, or all zeros (a placeholder) is refused, saying how to write it', () => {
    expect(clientIdProblems(`{${client}}`)).toEqual([
      `GRAPH_CLIENT_ID: write it without braces, ${client}: ${WHERE}`,
    ])
    expect(clientIdProblems(client.replaceAll('-', ''))).toEqual([
      `GRAPH_CLIENT_ID: write it with its dashes, after the 8th, 12th, 16th and 20th digit: ${WHERE}`,
    ])
    expect(clientIdProblems('00000000-0000-0000-0000-000000000000')).toEqual([
      `GRAPH_CLIENT_ID: is the all-zero GUID, a placeholder (fly.toml's), which names no app: set your app's: ${WHERE}`,
    ])
  })
})
