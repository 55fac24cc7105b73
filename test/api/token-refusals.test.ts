// What a refused token's 401 says: the claim or header at fault and, for Entra's v1/v2 mix-ups, what to change; never a claim's value; one log line per refusal with the request id.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from 'jose'
import { systemClock } from '../../src/clock.ts'
import { createLogger } from '../../src/log.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import {
  APP_ID_URI,
  CLIENT_ID,
  entraApps,
  entraClaims,
  serveEntraKeys,
  V1_ISSUER,
} from './support/entra.ts'
import { type App, appOnDefault, send } from './support/harness.ts'
import { token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const OTHER_TENANT_ID = crypto.randomUUID()

type Problem = { type: string; detail: string; requestId: string }
type Line = Record<string, unknown>

let t: TestDb
let privateKey: CryptoKey
let server: ReturnType<typeof Bun.serve>
let v1: App
let v2: App
const lines: Line[] = []

beforeAll(async () => {
  t = await createTestDb()
  const pair = await generateKeyPair('RS256')
  privateKey = pair.privateKey
  const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'entra-key-1', use: 'sig' }
  const keys = serveEntraKeys(jwk)
  server = keys.server
  const log = createLogger('debug', (l) => lines.push(JSON.parse(l)))
  ;({ v1, v2 } = entraApps(t, keys.jwksUrl, { log }))
})
afterAll(async () => {
  await server.stop(true)
  await t.drop()
})

/** Claims as Entra issues them; each value but `ver` and the times is one the 401 must not echo. */
const claimsOf = (version: '1.0' | '2.0', extra: JWTPayload = {}) =>
  entraClaims(version, { roles: ['outbox:read'], ...extra })

const sign = (claims: JWTPayload, o: { kid?: string; key?: CryptoKey } = {}) =>
  new SignJWT(claims)
    .setProtectedHeader({ typ: 'JWT', alg: 'RS256', kid: o.kid ?? 'entra-key-1' })
    .sign(o.key ?? privateKey)

/** The refusal of `tk` by `app`: a 401 whose detail holds none of `claims`' ids nor the token. */
async function refused(app: App, tk: string, claims: JWTPayload = {}): Promise<string> {
  const r = await send(app, 'GET', '/v1/outbox', { token: tk })
  const body = r.body as Problem
  expect([r.status, body.type]).toEqual([401, 'urn:outbox-mailer:problem:unauthorized'])
  for (const v of [tk, ...tk.split('.'), claims.sub, claims.oid, claims.tid, claims.iss]) {
    if (typeof v === 'string') expect(body.detail).not.toContain(v)
  }
  if (typeof claims.aud === 'string') expect(body.detail).not.toContain(claims.aud)
  return body.detail
}

describe("Entra's token versions mixed up", () => {
  test('a v1 token where a v2 one is expected names iss and accessTokenAcceptedVersion', async () => {
    const claims = claimsOf('1.0')
    const detail = await refused(v2, await sign(claims), claims)
    expect(detail).toContain('iss')
    expect(detail).toContain('v1')
    expect(detail).toContain('accessTokenAcceptedVersion')
    expect(detail).toContain('API_JWT_ISSUER')
  })

  test('a v2 token where a v1 one is expected names iss and API_JWT_ISSUER', async () => {
    const claims = claimsOf('2.0')
    const detail = await refused(v1, await sign(claims), claims)
    expect(detail).toContain('iss')
    expect(detail).toContain('v2')
    expect(detail).toContain('API_JWT_ISSUER')
  })

  test('a token of another Entra tenant says so', async () => {
    const claims = claimsOf('2.0', {
      iss: `https://login.microsoftonline.com/${OTHER_TENANT_ID}/v2.0`,
      tid: OTHER_TENANT_ID,
    })
    const detail = await refused(v2, await sign(claims), claims)
    expect(detail).toContain('iss')
    expect(detail).toContain('another Entra tenant')
  })

  test('a token of another Microsoft cloud (a national cloud) names both clouds, not another tenant', async () => {
    const cases: [JWTPayload, App, string, string][] = [
      // A US Government tenant's v2 token at an API whose issuer is the public cloud's.
      [
        claimsOf('2.0', {
          iss: `https://login.microsoftonline.us/${OTHER_TENANT_ID}/v2.0`,
          tid: OTHER_TENANT_ID,
        }),
        v2,
        'the US Government cloud',
        'the public cloud',
      ],
      // A China (21Vianet) tenant's v1 token where the public cloud's v1 issuer is expected.
      [
        claimsOf('1.0', {
          iss: `https://sts.chinacloudapi.cn/${OTHER_TENANT_ID}/`,
          tid: OTHER_TENANT_ID,
        }),
        v1,
        'the China cloud (21Vianet)',
        // US Government v1 tokens carry sts.windows.net too.
        'the public cloud or the US Government cloud',
      ],
    ]
    for (const [claims, app, theirs, ours] of cases) {
      const detail = await refused(app, await sign(claims), claims)
      expect(detail).not.toContain('another Entra tenant')
      expect(detail).toContain(`the token's iss is ${theirs}'s`)
      expect(detail).toContain(`API_JWT_ISSUER ${ours}'s`)
    }
  })

  test("a public-cloud v1 issuer (sts.windows.net, which US Government v1 tokens carry too) is no other cloud's", async () => {
    const claims = claimsOf('1.0', {
      iss: `https://sts.windows.net/${OTHER_TENANT_ID}/`,
      tid: OTHER_TENANT_ID,
    })
    const detail = await refused(v1, await sign(claims), claims)
    expect(detail).toContain('another Entra tenant')
  })

  test('aud: the Application ID URI where the bare client id is expected, and the other way round', async () => {
    const uri = claimsOf('1.0', { aud: APP_ID_URI })
    const v1BareApp = appOnDefault(t, {
      auth: {
        jwtSecret: null,
        jwksUrl: `http://127.0.0.1:${server.port}/keys`,
        issuer: V1_ISSUER,
        audience: CLIENT_ID,
      },
    }).app
    const toBare = await refused(v1BareApp, await sign(uri), uri)
    expect(toBare).toContain('aud')
    expect(toBare).toContain('Application ID URI')
    expect(toBare).toContain('API_JWT_AUDIENCE')
    const bare = claimsOf('1.0', { aud: CLIENT_ID })
    const toUri = await refused(v1, await sign(bare), bare)
    expect(toUri).toContain('aud')
    expect(toUri).toContain('client id')
    expect(toUri).toContain('API_JWT_AUDIENCE')
  })

  test("a Microsoft Graph token (another API's audience) says whose it is", async () => {
    const claims = claimsOf('2.0', { aud: 'https://graph.microsoft.com' })
    const detail = await refused(v2, await sign(claims), claims)
    expect(detail).toContain('aud')
    expect(detail).toContain('Microsoft Graph')
  })

  test("an aud that is no string nor a list of strings is another API's: a 401 naming aud, not a 500", async () => {
    // RFC 7519 4.1.3: a string or an array of strings; an issuer writing a number (or null in a
    // list) signed it still. The audience check refuses it; its explanation must too.
    for (const aud of [-1, 42, [1, null, {}], ['https://graph.microsoft.com', 7], [{}]]) {
      const claims = claimsOf('2.0', { aud: aud as unknown as string })
      const detail = await refused(v2, await sign(claims), claims)
      expect([aud, detail]).toEqual([
        aud,
        Array.isArray(aud) && aud.includes('https://graph.microsoft.com')
          ? expect.stringContaining('Microsoft Graph')
          : "the token's aud is not API_JWT_AUDIENCE: it was issued for another API",
      ])
    }
  })
})

describe('times, algorithm, key and signature', () => {
  test('expired: says expired and how long ago', async () => {
    const now = Math.floor(Date.now() / 1000)
    const claims = claimsOf('2.0', { iat: now - 7200, nbf: now - 7200, exp: now - 3600 })
    const detail = await refused(v2, await sign(claims), claims)
    expect(detail).toContain('expired')
    expect(detail).toMatch(/\b(59|60|61) min\b/)
  })

  test('not yet valid: says by how much the token is ahead of this clock', async () => {
    const now = Math.floor(Date.now() / 1000)
    const claims = claimsOf('2.0', { nbf: now + 600 })
    const detail = await refused(v2, await sign(claims), claims)
    expect(detail).toContain('nbf')
    expect(detail).toContain('not valid yet')
    expect(detail).toMatch(/\b(9|10) min\b/)
    expect(detail).toContain('clock')
  })

  test("times are judged by the server's clock (the injected one), with 60 s of skew allowed", async () => {
    const DAY_MS = 86_400_000
    const at = (offsetMs: number) =>
      appOnDefault(t, { clock: { now: () => Date.now() + offsetMs, sleep: systemClock.sleep } }).app
    // Valid by the wall clock for 5 minutes: a day later it expired 24 h ago.
    const expired = await refused(at(DAY_MS), await token({ expiresIn: 300 }))
    expect(expired).toContain('the token expired 24 h ago')
    // Valid by the wall clock from now on: a day earlier its nbf is 24 h ahead.
    const now = Math.floor(Date.now() / 1000)
    const early = await refused(at(-DAY_MS), await token({ extra: { nbf: now } }))
    expect(early).toContain('its nbf is 24 h ahead')
    // The skew allowed is the clock's too: exp 30 s past by it is accepted, 90 s past is not. The
    // clock stands still at a time set from the token's exp: the seconds said do not depend on how
    // long the apps take to build on a loaded machine.
    const exp = Math.floor(Date.now() / 1000) + 60
    const tk = await token({ expiresIn: null, extra: { exp } })
    const atPastExp = (ms: number) =>
      appOnDefault(t, { clock: { now: () => exp * 1000 + ms, sleep: systemClock.sleep } }).app
    expect((await send(atPastExp(30_000), 'GET', '/v1/outbox', { token: tk })).status).toBe(200)
    expect(await refused(atPastExp(90_000), tk)).toMatch(/^the token expired 90 s ago/)
  })

  test('an HS256 token at a key set: names alg and the algorithms accepted', async () => {
    const detail = await refused(v2, await token())
    expect(detail).toContain('alg')
    expect(detail).toContain('RS256')
  })

  test('a kid the key set does not hold: names kid and API_JWKS_URL', async () => {
    const claims = claimsOf('2.0')
    const detail = await refused(v2, await sign(claims, { kid: 'retired-key' }), claims)
    expect(detail).toContain('kid')
    expect(detail).toContain('API_JWKS_URL')
  })

  test("a signature by another key under the set's kid: names the signature", async () => {
    const claims = claimsOf('2.0')
    const other = (await generateKeyPair('RS256')).privateKey
    const detail = await refused(v2, await sign(claims, { key: other }), claims)
    expect(detail).toContain('signature')
  })

  test('an unsecured token (alg none, its signature part empty as RFC 7519 writes it): names alg and the algorithms accepted, not a malformed JWT', async () => {
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
    const unsecured = (claims: JWTPayload) => `${enc({ alg: 'none' })}.${enc(claims)}.`
    const hs = appOnDefault(t).app
    const exp = Math.floor(Date.now() / 1000) + 300
    for (const [app, claims, accepted] of [
      [hs, { scope: 'outbox:read', exp }, 'HS256'],
      [v2, claimsOf('2.0'), 'RS256'],
    ] as const) {
      // Not refused(): its check that no part of the token is echoed cannot take an empty part.
      const tk = unsecured(claims)
      const r = await send(app, 'GET', '/v1/outbox', { token: tk })
      const body = r.body as Problem
      expect([r.status, body.type]).toEqual([401, 'urn:outbox-mailer:problem:unauthorized'])
      expect(body.detail).not.toContain(tk.split('.')[1]!)
      expect(body.detail).toContain("the token's alg header is not one this API accepts")
      expect(body.detail).toContain(accepted)
    }
  })

  test('an HS256 token signed with another secret: names the signature and API_JWT_SECRET', async () => {
    const hs = appOnDefault(t).app
    const detail = await refused(
      hs,
      await token({ secret: 'another-secret-that-is-at-least-32-chars' }),
    )
    expect(detail).toContain('signature')
    expect(detail).toContain('API_JWT_SECRET')
  })
})

describe('the log line', () => {
  test('one info line per refusal with the request id, the reason and the claim, no claim value', async () => {
    const claims = claimsOf('1.0')
    const tk = await sign(claims)
    const requestId = `refusal-${crypto.randomUUID()}`
    const r = await send(v2, 'GET', '/v1/outbox', {
      token: tk,
      headers: { 'x-request-id': requestId },
    })
    expect(r.status).toBe(401)
    const mine = lines.filter((l) => l.requestId === requestId && l.msg !== 'request')
    expect(mine).toHaveLength(1)
    expect(mine[0]).toMatchObject({ level: 'info', claim: 'iss', reason: 'issuer_entra_v1' })
    const text = JSON.stringify(mine[0])
    for (const v of [tk, claims.sub, claims.oid, claims.tid] as string[]) {
      expect(text).not.toContain(v)
    }
  })
})
