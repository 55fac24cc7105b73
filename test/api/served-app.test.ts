// serve's app: health, readiness and metrics from the start, the API loaded at its first request; refusing at start as the API's app does.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { createApp } from '../../src/api/app.ts'
import { createMetricsApp } from '../../src/api/operations-app.ts'
import { createServedApp } from '../../src/api/served-app.ts'
import { isAppError } from '../../src/errors.ts'
import { useTestDb } from '../support/db.ts'
import { appOnDefault, enqueueSql } from './support/harness.ts'
import { token } from './support/tokens.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const t = useTestDb()
const noAuth = { jwtSecret: null, jwksUrl: null, issuer: null, audience: null }

const refusal = (make: () => unknown): unknown => {
  try {
    make()
  } catch (e) {
    return e
  }
  return null
}

describe('at its making (the start)', () => {
  test('it refuses what the API would refuse at its first request: no auth outside dev, a key set without issuer and audience, no database', () => {
    const { deps } = appOnDefault(t)
    for (const over of [
      { auth: noAuth, dev: false },
      { auth: { ...noAuth, jwksUrl: 'https://login.example/keys' } },
      { databases: [] },
    ]) {
      const e = refusal(() => createServedApp({ ...deps, ...over }))
      expect(isAppError(e, 'config_invalid')).toBe(true)
      expect((e as Error).message).toBe(
        (refusal(() => createApp({ ...deps, ...over })) as Error).message,
      )
    }
  })

  test('a worker-only process (operations surface) needs no API auth', () => {
    const { deps } = appOnDefault(t)
    expect(refusal(() => createServedApp({ ...deps, auth: noAuth, surface: 'operations' }))).toBe(
      null,
    )
  })
})

test('it answers every request as the API app does: probes at once, the rest (404s and 405s included) once the API is loaded', async () => {
  const { deps } = appOnDefault(t)
  const served = createServedApp(deps)
  const full = createApp(deps)
  const auth = { authorization: `Bearer ${await token({ scope: 'outbox:read' })}` }
  const asked: [string, string, Record<string, string>?][] = [
    ['GET', '/readyz'],
    ['HEAD', '/healthz'],
    ['GET', '/metrics?x=1'],
    ['POST', '/readyz'],
    ['GET', '/readyz/'],
    ['GET', '/v1/outbox'],
    ['GET', '/v1/outbox', auth],
    ['DELETE', '/v1/outbox', auth],
    ['GET', '/nowhere'],
    ['GET', '/openapi.json'],
  ]
  const answer = async (
    fetch: (r: Request) => Response | Promise<Response>,
    a: (typeof asked)[0],
  ) => {
    const res = await fetch(
      new Request(`http://localhost${a[1]}`, { method: a[0], headers: a[2] ?? {} }),
    )
    const headers = Object.fromEntries(
      [...res.headers].filter(([name]) => name !== 'x-request-id' && name !== 'date'),
    )
    const body = (await res.text()).replace(/"requestId":"[^"]*"/g, '')
    return { status: res.status, headers, body: a[1] === '/metrics?x=1' ? body.length > 0 : body }
  }
  for (const a of asked) {
    expect({ asked: a.slice(0, 2), ...(await answer(served.fetch, a)) }).toEqual({
      asked: a.slice(0, 2),
      ...(await answer(full.fetch, a)),
    })
  }
})

test('on the wire, a HEAD answers the length of its GET, not content-length 0', async () => {
  // Hono answers a HEAD with the GET's headers and no body, and Bun's server then wrote
  // `content-length: 0`: a client that trusts it (a cache, a HEAD before a download) was told the
  // answer is empty. RFC 9110 9.3.2: the GET's length, or none.
  const { deps } = appOnDefault(t)
  const server = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: createServedApp(deps).fetch })
  try {
    const id = await enqueueSql(t.pool)
    const authorization = `Bearer ${await token({ scope: 'outbox:read' })}`
    for (const path of ['/healthz', '/openapi.json', `/v1/outbox/${id}`, '/v1/outbox/999999999']) {
      const url = `http://127.0.0.1:${server.port}${path}`
      const get = await fetch(url, { headers: { authorization } })
      const length = (await get.arrayBuffer()).byteLength
      const head = await fetch(url, { method: 'HEAD', headers: { authorization } })
      expect([path, head.status, head.headers.get('content-length')]).toEqual([
        path,
        get.status,
        String(length),
      ])
    }
  } finally {
    server.stop(true)
  }
})

test('a worker-only process answers an API path with a 404 that says it serves no API, not a bare "no route"', async () => {
  // Fly balances an [http_service] over every group it names: a split whose api group was not named
  // alone there sent some /v1 requests to workers, whose 404 said only "no route for GET /v1/stats".
  const { deps } = appOnDefault(t)
  const worker = createServedApp({ ...deps, surface: 'operations' })
  for (const path of ['/v1/stats', '/v1/outbox/1', '/openapi.json', '/docs']) {
    const r = await worker.fetch(new Request(`http://localhost${path}`))
    const body = (await r.json()) as { type: string; detail: string }
    expect([path, r.status, body.type]).toEqual([path, 404, 'urn:outbox-mailer:problem:not_found'])
    expect(body.detail).toContain('this process runs `serve --role worker`')
  }
  // Elsewhere a 404 stays a plain one.
  const r = await worker.fetch(new Request('http://localhost/nowhere'))
  expect(((await r.json()) as { detail: string }).detail).toBe('no route for GET /nowhere')
})

test('with METRICS_PORT, /metrics asked on PORT is a 404 that says where it is served, for an API and a worker alike', async () => {
  // A scraper or an operator pointed at PORT read "no route for GET /metrics" as metrics gone.
  const { deps } = appOnDefault(t)
  for (const surface of ['all', 'operations'] as const) {
    const served = createServedApp({ ...deps, surface, metricsApart: true })
    for (const method of ['GET', 'HEAD', 'POST']) {
      const r = await served.fetch(new Request('http://localhost/metrics', { method }))
      const body = method === 'HEAD' ? null : ((await r.json()) as { type: string; detail: string })
      expect([surface, method, r.status, body]).toEqual([
        surface,
        method,
        404,
        method === 'HEAD'
          ? null
          : {
              ...body,
              type: 'urn:outbox-mailer:problem:not_found',
              detail:
                '/metrics is served on a port of its own (METRICS_PORT), not on this one (PORT)',
            },
      ])
    }
  }
})

/** The detail of the problem `app` answers GET `path` with. */
const detailOn = async (
  app: { fetch: (r: Request) => Response | Promise<Response> },
  path: string,
) =>
  ((await (await app.fetch(new Request(`http://localhost${path}`))).json()) as { detail: string })
    .detail

test("METRICS_PORT's listener answers another path with a 404 that says it serves /metrics alone", async () => {
  const { deps } = appOnDefault(t)
  const metrics = createMetricsApp({ ...deps, metricsApart: true })
  const said = (path: string) => detailOn(metrics, path)
  const apart =
    'this listener (METRICS_PORT) serves /metrics alone: health, readiness and the API are on PORT'
  expect([await said('/healthz'), await said('/readyz'), await said('/v1/stats')]).toEqual([
    apart,
    apart,
    apart,
  ])
  expect((await metrics.fetch(new Request('http://localhost/metrics'))).status).toBe(200)
})

test("a worker's METRICS_PORT listener says of an API path that the process serves no API, not that it is on PORT", async () => {
  // A `serve --role worker` process serves health and readiness on PORT, and no API anywhere.
  const { deps } = appOnDefault(t)
  const metrics = createMetricsApp({ ...deps, metricsApart: true, surface: 'operations' })
  const said = (path: string) => detailOn(metrics, path)
  const apart =
    'this listener (METRICS_PORT) serves /metrics alone: health and readiness are on PORT'
  const noApi =
    'this listener (METRICS_PORT) serves /metrics alone; this process runs `serve --role worker`, which serves no API: send /v1, /openapi.json and /docs to a `serve --role api` (or `all`) process'
  expect([
    await said('/healthz'),
    await said('/readyz'),
    await said('/v1/stats'),
    await said('/openapi.json'),
  ]).toEqual([apart, apart, noApi, noApi])
})
