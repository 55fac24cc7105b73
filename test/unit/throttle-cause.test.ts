// outbox_graph_throttled_total's cause of each wait: a 429 or spent quota throttled, a 503 or 504 unavailable, no connection unreachable, the rest other.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { parseTokenError } from '../../src/transport/graph-token-error.ts'
import { throttleCause } from '../../src/transport/throttle-cause.ts'

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
