// Microsoft Entra access tokens (v1 and v2) against a key set shaped as Entra's: scp and roles grant the scopes, tid is no tenant.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose'
import { useTestDb } from '../support/db.ts'
import { entraApps, entraClaims, serveEntraKeys, V2_ISSUER } from './support/entra.ts'
import { type App, appOnDefault, enqueueSql, type Sent, send } from './support/harness.ts'
import { token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

type Problem = { type: string; detail: string }

const t = useTestDb({ resetEach: true })
let privateKey: CryptoKey
let server: ReturnType<typeof Bun.serve>
let v1: App
let v2: App

beforeAll(async () => {
  const pair = await generateKeyPair('RS256')
  privateKey = pair.privateKey
  // As login.microsoftonline.com/{tenant}/discovery/v2.0/keys publishes a key: no `alg`, with x5t and issuer.
  const jwk: JWK & { issuer: string } = {
    ...(await exportJWK(pair.publicKey)),
    kid: 'entra-key-1',
    use: 'sig',
    x5t: 'entra-key-1',
    issuer: V2_ISSUER,
  }
  const keys = serveEntraKeys(jwk)
  server = keys.server
  ;({ v1, v2 } = entraApps(t, keys.jwksUrl))
})
afterAll(async () => {
  await server.stop(true)
})

/** An access token as Entra issues it: its header (typ, alg, kid, x5t) and claims, `extra` on top. */
function entraToken(version: '1.0' | '2.0', extra: JWTPayload): Promise<string> {
  const claims = entraClaims(version, {
    ...(version === '1.0' ? { appid: crypto.randomUUID() } : { azp: crypto.randomUUID() }),
    ...extra,
  })
  return new SignJWT(claims)
    .setProtectedHeader({ typ: 'JWT', alg: 'RS256', kid: 'entra-key-1', x5t: 'entra-key-1' })
    .sign(privateKey)
}

const list = (app: App, tk: string) => send(app, 'GET', '/v1/outbox', { token: tk })
const cancel = async (app: App, tk: string) =>
  send(app, 'POST', `/v1/outbox/${await enqueueSql(t.pool)}/cancel`, { token: tk })

function expectForbidden(r: Sent, label: string, scope: string) {
  expect([label, r.status, (r.body as Problem).type]).toEqual([
    label,
    403,
    'urn:outbox-mailer:problem:forbidden',
  ])
  expect((r.body as Problem).detail).toContain(scope)
}

describe('an Entra application token (client credentials): app roles in `roles`', () => {
  test('v2: roles ["outbox:read"] may list but not cancel; ["outbox:write"] may cancel', async () => {
    const read = await entraToken('2.0', { roles: ['outbox:read'] })
    expect((await list(v2, read)).status).toBe(200)
    expectForbidden(await cancel(v2, read), 'read cancels', 'outbox:write')
    const write = await entraToken('2.0', { roles: ['outbox:write'] })
    expect((await cancel(v2, write)).status).toBe(200)
    expectForbidden(await list(v2, write), 'write lists', 'outbox:read')
  })

  test('v1: roles carrying both act and look', async () => {
    const both = await entraToken('1.0', { roles: ['outbox:write', 'outbox:read'] })
    expect((await list(v1, both)).status).toBe(200)
    expect((await cancel(v1, both)).status).toBe(200)
  })
})

describe('an Entra delegated token (a user signed in): scopes in the space-separated `scp`', () => {
  test('v1 and v2: scp "outbox:read" lists, "outbox:read outbox:write" also cancels', async () => {
    for (const [label, app, version] of [
      ['v1', v1, '1.0'],
      ['v2', v2, '2.0'],
    ] as const) {
      const read = await entraToken(version, { scp: 'outbox:read' })
      expect([label, (await list(app, read)).status]).toEqual([label, 200])
      expectForbidden(await cancel(app, read), `${label} read cancels`, 'outbox:write')
      const both = await entraToken(version, { scp: 'outbox:read outbox:write' })
      expect([label, (await cancel(app, both)).status]).toEqual([label, 200])
    }
  })

  test('a user assigned an app role: scp and roles together grant both', async () => {
    const tk = await entraToken('2.0', { scp: 'outbox:read', roles: ['outbox:write'] })
    expect((await list(v2, tk)).status).toBe(200)
    expect((await cancel(v2, tk)).status).toBe(200)
  })
})

describe('what Entra tokens do not grant', () => {
  test("other permissions, a value that only resembles one, and another app's token", async () => {
    for (const [label, extra] of [
      ['Graph-style name', { roles: ['Outbox.Read', 'Mail.Send'], scp: 'User.Read' }],
      ['a prefix', { scp: 'outbox:reader' }],
      ['roles as one string', { roles: 'outbox:read' }],
      ['scp with a comma', { scp: 'outbox:read,outbox:write' }],
    ] as const) {
      expectForbidden(await list(v2, await entraToken('2.0', extra)), label, 'outbox:read')
    }
    // A v1 token at an app that expects v2 (issuer and audience differ): 401, named.
    const wrong = await list(v2, await entraToken('1.0', { roles: ['outbox:read'] }))
    expect(wrong.status).toBe(401)
    expect((wrong.body as Problem).detail).toContain("the token's iss")
  })

  test('the tid claim (the Entra directory) confines nothing: every tenant’s rows are listed', async () => {
    const acme = await enqueueSql(t.pool, { tenant: 'acme' })
    const beta = await enqueueSql(t.pool, { tenant: 'beta' })
    const r = await list(v2, await entraToken('2.0', { roles: ['outbox:read'] }))
    expect((r.body as { items: { id: string }[] }).items.map((i) => i.id)).toEqual([beta, acme])
  })
})

describe('the same claims in any token', () => {
  test('an HS256 token may carry roles or scp instead of scope; scope keeps working alone', async () => {
    const hs = appOnDefault(t).app
    expect(
      (await list(hs, await token({ scope: '', extra: { roles: ['outbox:read'] } }))).status,
    ).toBe(200)
    expect((await list(hs, await token({ scope: '', extra: { scp: 'outbox:read' } }))).status).toBe(
      200,
    )
    // Okta and others send scp as an array of scopes.
    expect(
      (await list(hs, await token({ scope: '', extra: { scp: ['outbox:read'] } }))).status,
    ).toBe(200)
    expect((await list(hs, await token({ scope: 'outbox:read' }))).status).toBe(200)
    expectForbidden(await list(hs, await token({ scope: '' })), 'no scope', 'outbox:read')
  })
})
