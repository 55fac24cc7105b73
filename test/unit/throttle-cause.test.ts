// outbox_graph_throttled_total's cause of each wait (a 429 or spent quota throttled, a 503 or 504 unavailable, no connection unreachable, the rest other) and its service (Entra for a token, else Graph).
import { expect, setDefaultTimeout, test } from 'bun:test'
import { createMetrics } from '../../src/api/metrics.ts'
import { parseTokenError } from '../../src/transport/graph-token-error.ts'
import { throttleCause } from '../../src/transport/throttle-cause.ts'
import { fakeHealth } from '../api/support/fake-health.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

test('each wait a worker records is counted under the cause its answer says', () => {
  const waits: [string, number | undefined][] = [
    ['ApplicationThrottled', 429],
    // Entra throttling the token request: a throttle too.
    ['AADSTS50196', 429],
    ['ErrorExceededMessageLimit', 403],
    ['QuotaExceededException', 507],
    ['ServiceUnavailable', 503],
    ['http_504', 504],
    // Entra down: no token while it answers 503.
    ['token_http_503', 503],
    // A mailbox lookup Graph answered 503 (interrupted-send.ts records the status).
    ['lookup_failed', 503],
    ['graph_unreachable', undefined],
    ['token_network', undefined],
    ['token_timeout', undefined],
    // Entra leaving a token request unanswered past TOKEN_SLOW_MS: the row went back for a worker with a token.
    ['token_slow', undefined],
    ['graph_unauthorized', 401],
    ['AADSTS7000222', 401],
    ['certificate_expired', undefined],
    ['lookup_too_early', undefined],
    ['lookup_failed', undefined],
  ]
  expect(
    waits.map(([code, status]) => `${code} ${status ?? '-'}: ${throttleCause(code, status)}`),
  ).toEqual([
    'ApplicationThrottled 429: throttled',
    'AADSTS50196 429: throttled',
    'ErrorExceededMessageLimit 403: throttled',
    'QuotaExceededException 507: throttled',
    'ServiceUnavailable 503: unavailable',
    'http_504 504: unavailable',
    'token_http_503 503: unavailable',
    'lookup_failed 503: unavailable',
    'graph_unreachable -: unreachable',
    'token_network -: unreachable',
    'token_timeout -: unreachable',
    'token_slow -: unreachable',
    'graph_unauthorized 401: other',
    'AADSTS7000222 401: other',
    'certificate_expired -: other',
    'lookup_too_early -: other',
    'lookup_failed -: other',
  ])
})

test("Entra's token answers count as the token source reads them: its throttling codes that come with a 400 throttled, its 500s unavailable", () => {
  // review36: the token source waits out AADSTS50196 and AADSTS90055 as throttles (they come with
  // a 400) and the deploy guide calls AADSTS50000 (a 500) an Entra outage; each counted `other`,
  // beside a refused credential, where no rule reads it.
  const answers: [number, object][] = [
    [
      400,
      {
        error: 'invalid_request',
        error_codes: [90055],
        error_description: 'AADSTS90055: TenantThrottlingError',
      },
    ],
    [
      400,
      {
        error: 'invalid_request',
        error_codes: [50196],
        error_description: 'AADSTS50196: loop detected',
      },
    ],
    [
      500,
      {
        error: 'server_error',
        error_codes: [50000],
        error_description: 'AADSTS50000: There was an error issuing a token',
      },
    ],
    [502, {}],
    [
      401,
      {
        error: 'invalid_client',
        error_codes: [7000222],
        error_description: 'AADSTS7000222: expired',
      },
    ],
  ]
  expect(
    answers.map(([status, body]) => {
      const e = parseTokenError(status, JSON.stringify(body))
      return `${e.code} ${e.httpStatus}: ${throttleCause(e.code, e.httpStatus)}`
    }),
  ).toEqual([
    'AADSTS90055 400: throttled',
    'AADSTS50196 400: throttled',
    'AADSTS50000 500: unavailable',
    'token_http_502 502: unavailable',
    'AADSTS7000222 401: other',
  ])
})

test('each wait is counted under the service that answered it: Entra (no token) apart from Graph, so an Entra outage is no Graph outage', async () => {
  // alerts57: "Graph turning sends away" reads cause="unavailable"; an Entra outage (503s to the
  // token requests) while an earlier 429's pause stood counted there too, and fired it (promtool)
  // with words sending the reader to Graph's service health.
  const metrics = createMetrics({ databases: [], health: fakeHealth([]) })
  const waits: [string, number | undefined][] = [
    ['ServiceUnavailable', 503],
    ['http_504', 504],
    ['lookup_failed', 503],
    ['ApplicationThrottled', 429],
    ['graph_unreachable', undefined],
    ['graph_unauthorized', 401],
    ['token_http_503', 503],
    ['AADSTS50000', 500],
    ['AADSTS90055', 400],
    ['token_timeout', undefined],
    ['AADSTS7000222', 401],
    ['certificate_expired', undefined],
  ]
  for (const [code, httpStatus] of waits)
    metrics.observe({
      type: 'settled',
      db: 'eu',
      id: '1',
      outcome: 'throttled',
      code,
      ...(httpStatus === undefined ? {} : { httpStatus }),
    })
  const text = await metrics.registry.metrics()
  expect(text.split('\n').filter((l) => l.startsWith('outbox_graph_throttled_total{'))).toEqual([
    'outbox_graph_throttled_total{db="eu",cause="unavailable",service="graph"} 3',
    'outbox_graph_throttled_total{db="eu",cause="throttled",service="graph"} 1',
    'outbox_graph_throttled_total{db="eu",cause="unreachable",service="graph"} 1',
    'outbox_graph_throttled_total{db="eu",cause="other",service="graph"} 1',
    'outbox_graph_throttled_total{db="eu",cause="unavailable",service="entra"} 2',
    'outbox_graph_throttled_total{db="eu",cause="throttled",service="entra"} 1',
    'outbox_graph_throttled_total{db="eu",cause="unreachable",service="entra"} 1',
    'outbox_graph_throttled_total{db="eu",cause="other",service="entra"} 2',
  ])
})
