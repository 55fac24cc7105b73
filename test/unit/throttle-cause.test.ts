// outbox_graph_throttled_total's cause of each wait: a 429 or spent quota throttled, a 503 or 504 unavailable, no connection unreachable, the rest other.
import { expect, setDefaultTimeout, test } from 'bun:test'
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
