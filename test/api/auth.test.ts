// Bearer tokens: HS256 and JWKS verification, scopes, tenant confinement, refusal to run open, rate limits.
import { beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { exportJWK, generateKeyPair, SignJWT } from 'jose'
import { createApp } from '../../src/api/app.ts'
import { systemClock } from '../../src/clock.ts'
import type { ApiAuthConfig } from '../../src/config.ts'
import { isAppError } from '../../src/errors.ts'
import { useTestDb } from '../support/db.ts'
import { type App, appOnDefault, enqueueSql, send, setState } from './support/harness.ts'
import { AUDIENCE, ISSUER, token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb({ resetEach: true })
let app: App
type Problem = { type: string; detail: string }

beforeAll(async () => {
  app = appOnDefault(t).app
})

const list = (o: { token?: string; headers?: Record<string, string> }) =>
  send(app, 'GET', '/v1/outbox', o)

describe('HS256 tokens', () => {
  test('a missing token is 401 with WWW-Authenticate', async () => {
    const r = await list({})
    expect(r.status).toBe(401)
    expect(r.headers.get('www-authenticate')).toBe('Bearer')
    expect((r.body as Problem).type).toBe('urn:outbox-mailer:problem:unauthorized')
  })

  test('a token sent and refused answers WWW-Authenticate with error="invalid_token" (RFC 6750 3.1); no token, plain Bearer', async () => {
    const invalid = 'Bearer error="invalid_token"'
    const cases: [string, Record<string, string>, string][] = [
      ['no header', {}, 'Bearer'],
      ['Basic', { authorization: 'Basic dXNlcjpwYXNz' }, 'Bearer'],
      ['not a JWT', { authorization: 'Bearer not-a-jwt' }, invalid],
      ['expired', { authorization: `Bearer ${await token({ expiresIn: -600 })}` }, invalid],
      [
        'wrong key',
        { authorization: `Bearer ${await token({ secret: 'x'.repeat(40) })}` },
        invalid,
      ],
      ['bad tenant', { authorization: `Bearer ${await token({ tenant: 'a b' })}` }, invalid],
    ]
    for (const [name, headers, expected] of cases) {
      const r = await list({ headers })
      expect([name, r.status, r.headers.get('www-authenticate')]).toEqual([name, 401, expected])
    }
  })

  test('the scheme is case-insensitive (RFC 9110 11.1): bearer and BEARER are Bearer', async () => {
    const jwt = await token()
    const answers = []
    for (const scheme of ['Bearer', 'bearer', 'BEARER'])
      answers.push([
        scheme,
        (await list({ headers: { authorization: `${scheme} ${jwt}` } })).status,
      ])
    expect(answers).toEqual([
      ['Bearer', 200],
      ['bearer', 200],
      ['BEARER', 200],
    ])
  })

  test('malformed headers and tokens are 401', async () => {
    for (const h of [
      'Basic dXNlcjpwYXNz',
      'Bearer',
      'Bearer not-a-jwt',
      'Bearer a.b.c',
      'Bearer x y',
    ]) {
      expect([h, (await list({ headers: { authorization: h } })).status]).toEqual([h, 401])
    }
  })

  test('expired, wrong audience, wrong issuer, wrong key and no exp are 401', async () => {
    const cases: [string, string, string][] = [
      ['expired', await token({ expiresIn: -600 }), 'expired'],
      ['audience', await token({ audience: 'someone-else' }), 'aud'],
      ['issuer', await token({ issuer: 'https://evil.test' }), 'iss'],
      ['key', await token({ secret: 'another-secret-that-is-at-least-32-chars' }), 'signature'],
      ['no exp', await token({ expiresIn: null }), 'exp'],
    ]
    for (const [name, tk, detail] of cases) {
      const r = await list({ token: tk })
      expect([name, r.status]).toEqual([name, 401])
      expect((r.body as Problem).detail).toContain(detail)
    }
  })

  test('clock skew: nbf up to 60 s ahead and exp up to 60 s past are accepted, further is 401', async () => {
    const now = Math.floor(Date.now() / 1000)
    const cases: [string, string, number][] = [
      ['nbf 30 s ahead', await token({ extra: { nbf: now + 30 } }), 200],
      ['nbf 120 s ahead', await token({ extra: { nbf: now + 120 } }), 401],
      ['exp 30 s past', await token({ expiresIn: -30 }), 200],
      ['exp 120 s past', await token({ expiresIn: -120 }), 401],
    ]
    for (const [name, tk, status] of cases) {
      expect([name, (await list({ token: tk })).status]).toEqual([name, status])
    }
  })

  test('an unsigned (alg none) token is 401', async () => {
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
    const exp = Math.floor(Date.now() / 1000) + 300
    const none = `${enc({ alg: 'none' })}.${enc({ scope: 'outbox:read', iss: ISSUER, aud: AUDIENCE, exp })}.x`
    expect((await list({ token: none })).status).toBe(401)
  })

  test('scopes: read can look but not act; write can act but not look', async () => {
    const id = await enqueueSql(t.pool)
    const read = await token({ scope: 'outbox:read' })
    const write = await token({ scope: 'outbox:write' })
    expect((await list({ token: read })).status).toBe(200)
    const denied = await send(app, 'POST', `/v1/outbox/${id}/cancel`, { token: read })
    expect(denied.status).toBe(403)
    expect((denied.body as Problem).type).toBe('urn:outbox-mailer:problem:forbidden')
    expect(denied.headers.get('www-authenticate')).toBe('Bearer error="insufficient_scope"')
    expect((await list({ token: write })).status).toBe(403)
    expect((await send(app, 'POST', `/v1/outbox/${id}/cancel`, { token: write })).status).toBe(200)
    expect((await list({ token: await token({ scope: 'outbox:readwrite' }) })).status).toBe(403)
  })
})

describe('tenant confinement', () => {
  test("another tenant's rows are 404 for get, cancel and retry, and invisible to list, bulk and stats", async () => {
    const mine = await enqueueSql(t.pool, { tenant: 'acme' })
    const theirs = await enqueueSql(t.pool, { tenant: 'beta' })
    const failedTheirs = await enqueueSql(t.pool, { tenant: 'beta' })
    await setState(t.pool, failedTheirs, 'failed')
    const acme = await token({ tenant: 'acme' })
    expect((await send(app, 'GET', `/v1/outbox/${theirs}`, { token: acme })).status).toBe(404)
    expect((await send(app, 'GET', `/v1/outbox/${mine}`, { token: acme })).status).toBe(200)
    expect((await send(app, 'POST', `/v1/outbox/${theirs}/cancel`, { token: acme })).status).toBe(
      404,
    )
    expect(
      (await send(app, 'POST', `/v1/outbox/${failedTheirs}/retry`, { token: acme })).status,
    ).toBe(404)
    const listed = await send(app, 'GET', '/v1/outbox', { token: acme })
    expect((listed.body as { items: { id: string }[] }).items.map((i) => i.id)).toEqual([mine])
    const asked = await send(app, 'GET', '/v1/outbox?tenant=beta', { token: acme })
    expect((asked.body as { items: unknown[] }).items).toEqual([])
    const bulkCancel = await send(app, 'POST', '/v1/outbox/cancel', {
      token: acme,
      body: { filter: { ids: [theirs, mine] } },
    })
    expect((bulkCancel.body as { items: unknown[] }).items).toEqual([
      { id: mine, outcome: 'cancelled' },
    ])
    const bulkRetry = await send(app, 'POST', '/v1/outbox/retry', {
      token: acme,
      body: { filter: { tenant: 'beta' } },
    })
    expect((bulkRetry.body as { matched: number }).matched).toBe(0)
    const states = await t.pool.query(
      'select id::text, status from mailer.email_outbox order by id',
    )
    expect(states.rows).toEqual([
      { id: mine, status: 'cancelled' },
      { id: theirs, status: 'pending' },
      { id: failedTheirs, status: 'failed' },
    ])
    const stats = await send(app, 'GET', '/v1/stats', { token: acme })
    expect(
      (stats.body as { databases: { counts: Record<string, number> }[] }).databases[0]!.counts,
    ).toMatchObject({
      pending: 0,
      cancelled: 1,
      failed: 0,
    })
  })

  test('enqueue lands in the token tenant, and naming another tenant is 403', async () => {
    const acme = await token({ tenant: 'acme' })
    const message = { to: 'ada@example.com', subject: 'S', text: 'T' }
    const r = await send(app, 'POST', '/v1/outbox', { token: acme, body: { message } })
    expect(r.status).toBe(201)
    const row = await t.pool.query('select tenant from mailer.email_outbox where id = $1', [
      (r.body as { id: string }).id,
    ])
    expect(row.rows[0].tenant).toBe('acme')
    const other = await send(app, 'POST', '/v1/outbox', {
      token: acme,
      body: { message, options: { tenant: 'beta' } },
    })
    expect(other.status).toBe(403)
    // Its scope is fine: neither the title nor WWW-Authenticate may send the caller after a scope.
    expect((other.body as { title: string }).title).not.toContain('scope')
    expect(other.headers.get('www-authenticate') ?? '').not.toContain('insufficient_scope')
  })
})

describe('JWKS tokens', () => {
  /** The API verifying tokens against the key set a loopback server answers each fetch with. */
  const jwksAppServing = (answer: () => Response) => {
    const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: answer })
    const { app } = appOnDefault(t, {
      auth: {
        jwtSecret: null,
        jwksUrl: `http://127.0.0.1:${server.port}/jwks`,
        issuer: ISSUER,
        audience: AUDIENCE,
      },
    })
    return { app, server }
  }

  test('verifies against a remote key set with issuer, audience and algorithms pinned', async () => {
    const { publicKey, privateKey } = await generateKeyPair('RS256')
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256', use: 'sig' }
    let requests = 0
    const { app: jwksApp, server } = jwksAppServing(() => {
      requests++
      return Response.json({ keys: [jwk] })
    })
    try {
      const sign = (claims: Record<string, unknown>, kid = 'k1') =>
        new SignJWT({ scope: 'outbox:read', ...claims })
          .setProtectedHeader({ alg: 'RS256', kid })
          .setIssuer((claims.iss as string) ?? ISSUER)
          .setAudience((claims.aud as string) ?? AUDIENCE)
          .setExpirationTime('5m')
          .sign(privateKey)
      expect((await send(jwksApp, 'GET', '/v1/outbox', { token: await sign({}) })).status).toBe(200)
      expect(
        (
          await send(jwksApp, 'GET', '/v1/outbox', {
            token: await sign({ iss: 'https://evil.test' }),
          })
        ).status,
      ).toBe(401)
      expect(
        (await send(jwksApp, 'GET', '/v1/outbox', { token: await sign({ aud: 'other' }) })).status,
      ).toBe(401)
      // An HMAC token must never verify against a key set, whatever its secret.
      expect((await send(jwksApp, 'GET', '/v1/outbox', { token: await token() })).status).toBe(401)
      expect(requests).toBe(1)
      // A kid the set does not hold triggers a refetch, which finds no such key.
      const unknownKid = await send(jwksApp, 'GET', '/v1/outbox', { token: await sign({}, 'k2') })
      expect(unknownKid.status).toBe(401)
    } finally {
      await server.stop(true)
    }
  })

  test('each pinned asymmetric algorithm verifies: RS256, PS256, ES256, EdDSA and Ed25519', async () => {
    // What identity providers sign with besides Entra's RS256 (Okta and Auth0 ES256, Ory EdDSA).
    const algs = ['RS256', 'PS256', 'ES256', 'EdDSA', 'Ed25519'] as const
    const pairs = await Promise.all(algs.map((alg) => generateKeyPair(alg)))
    const keys = await Promise.all(
      algs.map(async (alg, i) => ({
        ...(await exportJWK(pairs[i]!.publicKey)),
        kid: alg,
        alg,
        use: 'sig',
      })),
    )
    const { app: jwksApp, server } = jwksAppServing(() => Response.json({ keys }))
    try {
      const answers: [string, number][] = []
      for (const [i, alg] of algs.entries()) {
        const jwt = await new SignJWT({ scope: 'outbox:read' })
          .setProtectedHeader({ alg, kid: alg })
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .setExpirationTime('5m')
          .sign(pairs[i]!.privateKey)
        answers.push([alg, (await send(jwksApp, 'GET', '/v1/outbox', { token: jwt })).status])
      }
      expect(answers).toEqual(algs.map((alg) => [alg, 200]))
    } finally {
      await server.stop(true)
    }
  })
})

describe('configuration', () => {
  const base = () => appOnDefault(t).deps
  const noAuth = { jwtSecret: null, jwksUrl: null, issuer: null, audience: null }

  test('without auth configured the API refuses to start', () => {
    let err: unknown
    try {
      createApp({ ...base(), auth: noAuth, dev: false })
    } catch (e) {
      err = e
    }
    expect(isAppError(err, 'config_invalid')).toBe(true)
  })

  test('both key sources, or a key set without its issuer or its audience, refuse to start', () => {
    const jwksUrl = 'http://127.0.0.1:9/jwks'
    const refusal = (auth: ApiAuthConfig) => {
      try {
        createApp({ ...base(), auth, dev: false })
        return 'started'
      } catch (e) {
        return isAppError(e, 'config_invalid') ? e.message : `not config_invalid: ${e}`
      }
    }
    expect([
      refusal({ jwtSecret: 'x'.repeat(40), jwksUrl, issuer: ISSUER, audience: AUDIENCE }),
      refusal({ jwtSecret: null, jwksUrl, issuer: ISSUER, audience: null }),
      refusal({ jwtSecret: null, jwksUrl, issuer: null, audience: AUDIENCE }),
    ]).toEqual([
      'API_JWT_SECRET and API_JWKS_URL are both set: use one',
      'API_JWKS_URL needs API_JWT_ISSUER and API_JWT_AUDIENCE',
      'API_JWKS_URL needs API_JWT_ISSUER and API_JWT_AUDIENCE',
    ])
  })

  test('in dev without auth every caller has both scopes', async () => {
    const dev = createApp({ ...base(), auth: noAuth, dev: true })
    expect((await send(dev, 'GET', '/v1/outbox')).status).toBe(200)
  })
})

describe('rate limit', () => {
  test('each token subject has its own bucket; an empty one answers 429 with Retry-After', async () => {
    const limited = appOnDefault(t, {
      rateLimitPerMinute: 3,
    }).app
    const a = await token({ sub: 'a' })
    const b = await token({ sub: 'b' })
    for (let i = 0; i < 3; i++)
      expect((await send(limited, 'GET', '/v1/stats', { token: a })).status).toBe(200)
    const over = await send(limited, 'GET', '/v1/stats', { token: a })
    expect(over.status).toBe(429)
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
    expect((over.body as Problem).type).toBe('urn:outbox-mailer:problem:rate_limited')
    expect((await send(limited, 'GET', '/v1/stats', { token: b })).status).toBe(200)
  })

  test('a bucket refills evenly over the minute, by the injected clock: Retry-After says when a request passes again', async () => {
    let now = Date.now()
    const limited = appOnDefault(t, {
      rateLimitPerMinute: 3,
      clock: { now: () => now, sleep: systemClock.sleep },
    }).app
    const a = await token({ sub: 'a' })
    const answers: [number, string | null][] = []
    const get = async () => {
      const r = await send(limited, 'GET', '/v1/stats', { token: a })
      answers.push([r.status, r.headers.get('retry-after')])
    }
    for (let i = 0; i < 4; i++) await get()
    // 3 a minute: a token every 20 s. 19.5 s on, half a second is still missing; 1 s later, one passes.
    now += 19_500
    await get()
    now += 1_000
    await get()
    await get()
    expect(answers).toEqual([
      [200, null],
      [200, null],
      [200, null],
      [429, '20'],
      [429, '1'],
      [200, null],
      [429, '20'],
    ])
  })
})

describe('tenant confinement of counts', () => {
  test("a bulk dry run counts only the token tenant's rows; stats count only its rows in flight and its oldest wait", async () => {
    const mine = await enqueueSql(t.pool, { tenant: 'acme' })
    const theirs = await enqueueSql(t.pool, { tenant: 'beta' })
    const theirsFailed = await enqueueSql(t.pool, { tenant: 'beta' })
    await setState(t.pool, theirsFailed, 'failed')
    const theirsSending = await enqueueSql(t.pool, { tenant: 'beta' })
    await setState(t.pool, theirsSending, 'sending')
    // Theirs has waited an hour: an unconfined oldest age would be theirs.
    await t.pool.query(
      `update mailer.email_outbox set send_at = now() - interval '1 hour' where id = $1`,
      [theirs],
    )
    const acme = await token({ tenant: 'acme' })
    const dryRun = async (path: string, filter: Record<string, unknown>) =>
      (await send(app, 'POST', path, { token: acme, body: { filter, dryRun: true } })).body
    const none = { dryRun: true, matched: 0, items: [], more: false }
    expect(await dryRun('/v1/outbox/cancel', { ids: [mine, theirs, theirsSending] })).toEqual({
      ...none,
      matched: 1,
    })
    expect(await dryRun('/v1/outbox/cancel', { tenant: 'beta' })).toEqual(none)
    expect(await dryRun('/v1/outbox/retry', { ids: [theirsFailed] })).toEqual(none)
    expect(await dryRun('/v1/outbox/retry', { status: ['failed'] })).toEqual(none)
    const stats = await send(app, 'GET', '/v1/stats', { token: acme })
    const [own] = (
      stats.body as { databases: { counts: unknown; oldestPendingAgeSeconds: number }[] }
    ).databases
    expect(own!.counts).toEqual({ pending: 1, sending: 0, sent: 0, failed: 0, cancelled: 0 })
    expect(own!.oldestPendingAgeSeconds).toBeLessThan(600)
    // A dry run changes nothing.
    const states = await t.pool.query(
      'select status, count(*)::int as n from mailer.email_outbox group by 1 order by 1',
    )
    expect(states.rows).toEqual([
      { status: 'failed', n: 1 },
      { status: 'pending', n: 2 },
      { status: 'sending', n: 1 },
    ])
  })
})

describe('the write scope', () => {
  test('every route that changes rows refuses a read-only token with 403 and changes nothing; write may', async () => {
    const pending = await enqueueSql(t.pool)
    const failed = await enqueueSql(t.pool)
    await setState(t.pool, failed, 'failed')
    const read = await token({ scope: 'outbox:read' })
    const write = await token({ scope: 'outbox:write' })
    const message = { to: 'ada@example.com', subject: 'S', text: 'T' }
    const changes: [string, { body?: unknown }][] = [
      ['/v1/outbox', { body: { message } }],
      [`/v1/outbox/${pending}/cancel`, {}],
      [`/v1/outbox/${failed}/retry`, {}],
      ['/v1/outbox/cancel', { body: { filter: { ids: [pending] } } }],
      ['/v1/outbox/retry', { body: { filter: { ids: [failed] } } }],
    ]
    for (const [path, o] of changes) {
      const r = await send(app, 'POST', path, { token: read, ...o })
      expect([path, r.status, r.headers.get('www-authenticate')]).toEqual([
        path,
        403,
        'Bearer error="insufficient_scope"',
      ])
    }
    const rows = async () =>
      (await t.pool.query('select id::text, status from mailer.email_outbox order by id')).rows
    expect(await rows()).toEqual([
      { id: pending, status: 'pending' },
      { id: failed, status: 'failed' },
    ])
    const created = await send(app, 'POST', '/v1/outbox', { token: write, body: { message } })
    expect(created.status).toBe(201)
    expect(await rows()).toHaveLength(3)
  })
})
