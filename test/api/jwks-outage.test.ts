// API_JWKS_URL's key set out of reach (down, slow, garbage): 503 auth_unavailable, while a bad token stays 401.
import {
  afterEach,
  beforeAll,
  describe,
  expect,
  setDefaultTimeout,
  setSystemTime,
  test,
} from 'bun:test'
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose'
import { type Clock, systemClock } from '../../src/clock.ts'
import { createLogger, type Logger, silentLogger } from '../../src/log.ts'
import { closedPort } from '../support/closed-port.ts'
import { useTestDb } from '../support/db.ts'
import { type App, appOnDefault, type Sent, send } from './support/harness.ts'
import { AUDIENCE, ISSUER } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

type Problem = { type: string; detail: string }
type Mode = 'up' | 'error' | 'html' | 'not-a-key-set' | 'empty' | 'redirect' | 'hang'

/** A JWKS endpoint the test controls: what it answers, and how many requests it saw. */
interface KeySetServer {
  url: string
  mode: Mode
  keys: JWK[]
  requests: number
  /** Stops listening (a fetch is refused) until up(), which listens on the same port again. */
  down(): Promise<void>
  up(): void
  stop(): Promise<void>
}

function keySetServer(keys: JWK[]): KeySetServer {
  const hung: (() => void)[] = []
  const state = { mode: 'up' as Mode, keys, requests: 0 }
  const serve = (port: number) =>
    Bun.serve({
      hostname: '127.0.0.1',
      port,
      fetch: () => {
        state.requests++
        switch (state.mode) {
          case 'up':
            return Response.json({ keys: state.keys })
          case 'error':
            return new Response('upstream unavailable', { status: 500 })
          case 'html':
            return new Response('<html>maintenance</html>', {
              headers: { 'content-type': 'text/html' },
            })
          case 'not-a-key-set':
            return Response.json({ keys: 'none today' })
          case 'empty':
            return Response.json({ keys: [] })
          case 'redirect':
            return new Response(null, {
              status: 302,
              headers: { location: 'https://elsewhere.test/' },
            })
          case 'hang':
            // Answers only when the test ends: jose's own timeout (5 s) must give up first.
            return new Promise<Response>((r) => hung.push(() => r(Response.json({ keys: [] }))))
        }
      },
    })
  let server: ReturnType<typeof serve> | null = serve(0)
  const port = server.port as number
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/jwks`,
    async down() {
      await server?.stop(true)
      server = null
    },
    up() {
      server ??= serve(port)
    },
    async stop() {
      for (const release of hung) release()
      await server?.stop(true)
    },
  })
}

const t = useTestDb()
let k1: { privateKey: CryptoKey; jwk: JWK }
let k2: { privateKey: CryptoKey; jwk: JWK }
const servers: KeySetServer[] = []

async function keyPair(kid: string) {
  const { publicKey, privateKey } = await generateKeyPair('RS256')
  return { privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } }
}

beforeAll(async () => {
  k1 = await keyPair('k1')
  k2 = await keyPair('k2')
})
afterEach(async () => {
  setSystemTime()
  for (const s of servers.splice(0)) await s.stop()
})

function appFor(jwksUrl: string, log: Logger = silentLogger, clock?: TestClock): App {
  return appOnDefault(t, {
    auth: { jwtSecret: null, jwksUrl, issuer: ISSUER, audience: AUDIENCE },
    log,
    ...(clock ? { clock } : {}),
  }).app
}

/** The app's clock: the wall clock as setSystemTime sets it (jose's too), a monotonic one the test moves. */
type TestClock = { now(): number; monotonic(): number; sleep: Clock['sleep'] }
function testClock() {
  const mono = { ms: 0 }
  return {
    mono,
    clock: { now: () => Date.now(), monotonic: () => mono.ms, sleep: systemClock.sleep },
  }
}

/**
 * A key set server (answering the keys until told otherwise) and a fresh app verifying against it
 * (jose caches per verifier), with the app's log lines from info up.
 */
function serving(keys: JWK[], clock?: TestClock) {
  const server = keySetServer(keys)
  servers.push(server)
  const lines: { level: string; msg: string; refused?: number }[] = []
  const log = createLogger('info', (l) => lines.push(JSON.parse(l)))
  return { server, app: appFor(server.url, log, clock), lines }
}

/**
 * `serving` one key, fetched and cached at `start`, its endpoint down from then on; the clock left
 * 11 minutes on, past the set's cache age (10 min).
 */
async function cachedThenDown(clock?: TestClock) {
  const s = serving([k1.jwk], clock)
  const start = Date.now()
  setSystemTime(new Date(start))
  expect((await list(s.app, await sign(k1))).status).toBe(200)
  await s.server.down()
  setSystemTime(new Date(start + 11 * 60_000))
  return { ...s, start }
}

const sign = (key: { privateKey: CryptoKey; jwk: JWK }, o: { exp?: number; kid?: string } = {}) =>
  new SignJWT({ scope: 'outbox:read' })
    .setProtectedHeader({ alg: 'RS256', kid: o.kid ?? (key.jwk.kid as string) })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setExpirationTime(o.exp ?? Math.floor(Date.now() / 1000) + 300)
    .sign(key.privateKey)

const list = async (app: App, tk: string) => send(app, 'GET', '/v1/outbox', { token: tk })

function expectUnavailable(r: Sent, label: string) {
  expect([label, r.status, (r.body as Problem).type]).toEqual([
    label,
    503,
    'urn:outbox-mailer:problem:auth_unavailable',
  ])
  expect([label, Number(r.headers.get('retry-after')) >= 1]).toEqual([label, true])
  // Nothing sends the client after another token: the token was never judged.
  expect([label, r.headers.get('www-authenticate')]).toEqual([label, null])
  expect((r.body as Problem).detail).toContain('signing keys')
}

function expectUnauthorized(r: Sent, label: string) {
  expect([label, r.status, (r.body as Problem).type]).toEqual([
    label,
    401,
    'urn:outbox-mailer:problem:unauthorized',
  ])
  expect(r.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"')
}

describe('the key set cannot be fetched: 503 auth_unavailable with Retry-After', () => {
  test('nothing listens at API_JWKS_URL', async () => {
    const app = appFor(`http://127.0.0.1:${await closedPort()}/jwks`)
    expectUnavailable(await list(app, await sign(k1)), 'refused')
  })

  test('it answers an error status, HTML, JSON that is no key set, or a redirect', async () => {
    for (const mode of ['error', 'html', 'not-a-key-set', 'redirect'] as const) {
      const { server, app } = serving([k1.jwk])
      server.mode = mode
      expectUnavailable(await list(app, await sign(k1)), mode)
      expect([mode, server.requests]).toEqual([mode, 1])
    }
  })

  test('it does not answer within jose’s timeout', async () => {
    const { server, app } = serving([k1.jwk])
    server.mode = 'hang'
    expectUnavailable(await list(app, await sign(k1)), 'hang')
  })

  test('every /v1 operation declares it under 503, with Retry-After', async () => {
    const app = appFor('http://127.0.0.1:1/jwks')
    const doc = (await (await app.request('/openapi.json')).json()) as {
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>
    }
    const v1 = Object.entries(doc.paths).filter(([path]) => path.startsWith('/v1/'))
    expect(v1.length).toBeGreaterThan(0)
    for (const [path, ops] of v1) {
      for (const [method, op] of Object.entries(ops)) {
        const declared = JSON.stringify(op.responses['503'] ?? null)
        // A HEAD's answers have no content, so no problem types: its description names the code.
        const named = method === 'head' ? '(auth_unavailable)' : 'problem:auth_unavailable"'
        expect([method, path, declared]).toEqual([method, path, expect.stringContaining(named)])
        expect([method, path, declared]).toEqual([
          method,
          path,
          expect.stringContaining('Retry-After'),
        ])
      }
    }
  })
})

describe('an empty key set ({"keys": []}): the provider\'s answer is wrong, not the token', () => {
  test('503 auth_unavailable, logged as an outage and held off 5 s; 200 once the set holds keys again', async () => {
    const { server, app, lines } = serving([k1.jwk])
    const start = Date.now()
    setSystemTime(new Date(start))
    server.mode = 'empty'
    expectUnavailable(await list(app, await sign(k1)), 'empty')
    expectUnavailable(await list(app, await sign(k1)), 'held off')
    expect(server.requests).toBe(1)
    server.mode = 'up'
    setSystemTime(new Date(start + 5_000))
    expect((await list(app, await sign(k1))).status).toBe(200)
    expect(server.requests).toBe(2)
    expect(lines.filter((l) => l.msg !== 'request').map((l) => l.level)).toEqual(['warn', 'info'])
  })
})

describe('a token that is really bad stays 401', () => {
  test('with the key set fetched: a wrong signature, an expired token, an unknown kid', async () => {
    const { server, app } = serving([k1.jwk])
    expect((await list(app, await sign(k1))).status).toBe(200)
    // k2's signature under k1's kid: the key is found, the signature is wrong.
    expectUnauthorized(await list(app, await sign(k2, { kid: 'k1' })), 'signature')
    expectUnauthorized(
      await list(app, await sign(k1, { exp: Math.floor(Date.now() / 1000) - 60 })),
      'expired',
    )
    // jose refetches for an unknown kid only after its 30 s cooldown: within it the set is current.
    expectUnauthorized(await list(app, await sign(k2)), 'unknown kid')
    expect(server.requests).toBe(1)
  })
})

describe('jose’s cache and refetch', () => {
  test('a failed fetch is retried by the first request after the hold-off (5 s): the outage ends, tokens verify again', async () => {
    const { server, app } = serving([k1.jwk])
    const start = Date.now()
    setSystemTime(new Date(start))
    server.mode = 'error'
    expectUnavailable(await list(app, await sign(k1)), 'down')
    setSystemTime(new Date(start + 5_000))
    server.mode = 'html'
    expectUnavailable(await list(app, await sign(k1)), 'garbage')
    setSystemTime(new Date(start + 10_000))
    server.mode = 'up'
    expect((await list(app, await sign(k1))).status).toBe(200)
    expect(server.requests).toBe(3)
  })

  test('a rotated key (unknown kid) is fetched after the cooldown; if the fetch fails, 503', async () => {
    const { server, app } = serving([k1.jwk])
    const start = Date.now()
    expect((await list(app, await sign(k1))).status).toBe(200)
    server.keys = [k1.jwk, k2.jwk]
    // Past the cooldown (30 s; jose reads Date.now), an unknown kid refetches: the endpoint is down.
    setSystemTime(new Date(start + 31_000))
    server.mode = 'error'
    expectUnavailable(await list(app, await sign(k2)), 'refetch failed')
    // The key set still held serves the kid it knows meanwhile.
    expect((await list(app, await sign(k1))).status).toBe(200)
    server.mode = 'up'
    // Past the hold-off after the failed fetch.
    setSystemTime(new Date(start + 36_000))
    expect((await list(app, await sign(k2))).status).toBe(200)
    expect(server.requests).toBe(3)
  })

  test('a key set past its cache age (10 min) whose endpoint is down still verifies the keys it holds until it is 12 h old; a kid it lacks is 503', async () => {
    const { server, app, start } = await cachedThenDown()
    expect((await list(app, await sign(k1))).status).toBe(200)
    // A kid the cached set lacks may be in the set it cannot fetch: not judged.
    expectUnavailable(await list(app, await sign(k2)), 'unknown kid, set stale')
    setSystemTime(new Date(start + 12 * 3_600_000 - 1_000))
    expect((await list(app, await sign(k1))).status).toBe(200)
    // Past the bound the cached set no longer serves.
    setSystemTime(new Date(start + 12 * 3_600_000))
    expectUnavailable(await list(app, await sign(k1)), 'stale past 12 h')
    server.up()
    setSystemTime(new Date(start + 12 * 3_600_000 + 5_000))
    expect((await list(app, await sign(k1))).status).toBe(200)
    expect((await list(app, await sign(k2))).status).toBe(401)
  })

  test('a stale set serves whatever the fetch meets: an error status, an empty set, garbage', async () => {
    for (const mode of ['error', 'empty', 'not-a-key-set', 'html'] as const) {
      const { server, app } = serving([k1.jwk])
      const start = Date.now()
      setSystemTime(new Date(start))
      expect([mode, (await list(app, await sign(k1))).status]).toEqual([mode, 200])
      server.mode = mode
      setSystemTime(new Date(start + 11 * 60_000))
      expect([mode, (await list(app, await sign(k1))).status]).toEqual([mode, 200])
      expect([mode, server.requests]).toEqual([mode, 2])
      setSystemTime()
    }
  })
})

describe('an outage of a key set held in cache', () => {
  test('requests that shared a failed fetch count it once', async () => {
    const { mono, clock } = testClock()
    const { app, lines, start } = await cachedThenDown(clock)
    const tokens = await Promise.all(Array.from({ length: 5 }, () => sign(k1)))
    const burst = await Promise.all(tokens.map((tk) => list(app, tk)))
    expect(burst.map((r) => r.status)).toEqual([200, 200, 200, 200, 200])
    setSystemTime(new Date(start + 16 * 60_000))
    mono.ms += 5 * 60_000
    expect((await list(app, await sign(k1))).status).toBe(200)
    const warnings = lines.filter((l) => l.level === 'warn') as Record<string, unknown>[]
    expect(warnings).toHaveLength(2)
    expect(warnings[1]).toMatchObject({ failures: 2, sinceMs: 300_000 })
  })

  // 62 requests, each with a token signed (RS256) and an answer checked against the document: past
  // 30 s on a loaded machine (21.8–30.2 s beside a busy loop, three copies at once).
  test('logged at its start (the cached set serving, until when), every 5 minutes, when the cached set stops serving (answering 503 from then on), and at its end', async () => {
    const { mono, clock } = testClock()
    const { server, app, lines, start } = await cachedThenDown(clock)
    expect((await list(app, await sign(k1))).status).toBe(200)
    // One fetch per hold-off; a line only after 5 minutes of them.
    for (let s = 5; s <= 300; s += 5) {
      setSystemTime(new Date(start + 11 * 60_000 + s * 1_000))
      mono.ms = s * 1_000
      expect((await list(app, await sign(k1))).status).toBe(200)
    }
    setSystemTime(new Date(start + 12 * 3_600_000))
    expectUnavailable(await list(app, await sign(k1)), 'past the bound')
    expectUnavailable(await list(app, await sign(k1)), 'past the bound, held off')
    server.up()
    setSystemTime(new Date(start + 12 * 3_600_000 + 5_000))
    expect((await list(app, await sign(k1))).status).toBe(200)
    const others = lines.filter((l) => l.msg !== 'request') as Record<string, unknown>[]
    expect(others.map((l) => [l.level, l.msg])).toEqual([
      [
        'warn',
        'API signing keys unavailable; verifying with the cached key set until it is 12 h old, fetching it again at most every 5 s',
      ],
      [
        'warn',
        'API signing keys unavailable; verifying with the cached key set until it is 12 h old, fetching it again at most every 5 s',
      ],
      [
        'warn',
        'API signing keys unavailable; answering 503 auth_unavailable, fetching them again at most every 5 s',
      ],
      ['info', 'API signing keys fetched again after an outage'],
    ])
    const until = new Date(start + 12 * 3_600_000).toISOString()
    expect(others[0]!.cachedKeysServeUntil).toBe(until)
    expect(others[1]).toMatchObject({ failures: 61, sinceMs: 300_000 })
    expect(others[2]!.cachedKeysServeUntil).toBe(until)
    expect(others[3]).toMatchObject({ refused: 2, servedStale: 61 })
  }, 120_000)
  test('a wall clock stepped ahead mid-outage brings no reminder: the run is timed on the monotonic clock', async () => {
    const { mono, clock } = testClock()
    const { app, lines, start } = await cachedThenDown(clock)
    expect((await list(app, await sign(k1))).status).toBe(200)
    // The wall clock steps 6 minutes ahead (NTP, an operator) while 5 s pass: past the hold-off.
    setSystemTime(new Date(start + 17 * 60_000))
    mono.ms += 5_000
    expect((await list(app, await sign(k1))).status).toBe(200)
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1)
  })
})

describe('an outage of the key set', () => {
  test('after a failed fetch the key set is not fetched again for 5 s: requests meanwhile are 503 from the remembered failure; one warning for the outage, one line when it ends with the count', async () => {
    const { server, app, lines } = serving([k1.jwk])
    const start = Date.now()
    setSystemTime(new Date(start))
    server.mode = 'error'
    // A client retrying at once, and a burst at the same moment: one fetch between them.
    expectUnavailable(await list(app, await sign(k1)), 'first')
    const burst = await Promise.all(
      Array.from({ length: 5 }, async () => list(app, await sign(k1))),
    )
    for (const [i, r] of burst.entries()) expectUnavailable(r, `burst ${i}`)
    expectUnavailable(await list(app, await sign(k1)), 'retry')
    expect(server.requests).toBe(1)
    // Past the hold-off the next request fetches again: still down, held off again.
    setSystemTime(new Date(start + 5_000))
    expectUnavailable(await list(app, await sign(k1)), 'after the hold-off')
    expectUnavailable(await list(app, await sign(k1)), 'held off again')
    expect(server.requests).toBe(2)
    server.mode = 'up'
    setSystemTime(new Date(start + 10_000))
    expect((await list(app, await sign(k1))).status).toBe(200)
    expect(server.requests).toBe(3)
    // Besides the access line of each request: the outage's start and its end, not a line per request.
    const others = lines.filter((l) => l.msg !== 'request')
    expect(others.map((l) => [l.level, l.msg])).toEqual([
      [
        'warn',
        'API signing keys unavailable; answering 503 auth_unavailable, fetching them again at most every 5 s',
      ],
      ['info', 'API signing keys fetched again after an outage'],
    ])
    expect(others[1]!.refused).toBe(9)
  })

  test('the line that ends an outage gives its length on the monotonic clock: a wall clock stepped an hour on meanwhile is not counted', async () => {
    const { mono, clock } = testClock()
    const { server, app, lines } = serving([k1.jwk], clock)
    const start = Date.now()
    setSystemTime(new Date(start))
    server.mode = 'error'
    expectUnavailable(await list(app, await sign(k1)), 'down')
    // 10 s pass; the wall clock is also stepped an hour on (NTP).
    mono.ms += 10_000
    setSystemTime(new Date(start + 3_600_000 + 10_000))
    server.mode = 'up'
    expect(
      (await list(app, await sign(k1, { exp: Math.floor(Date.now() / 1000) + 300 }))).status,
    ).toBe(200)
    const ended = lines.find((l) => l.msg === 'API signing keys fetched again after an outage') as
      | { ms?: number }
      | undefined
    expect(ended?.ms).toBe(10_000)
  })
})
