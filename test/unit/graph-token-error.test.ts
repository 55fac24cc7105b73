// Token failure codes: each has the shape the settlement recognises as a wait for a token.
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { TOKEN_WAIT_CODE } from '../../src/outbox/settle-item.ts'
import {
  GRAPH_UNAUTHORIZED_CODE,
  GRAPH_UNREACHABLE_CODE,
} from '../../src/transport/graph-outage.ts'
import { TOKEN_REFUSED_LATE_CODE } from '../../src/transport/graph-request.ts'
import { GraphAuthError, parseTokenError } from '../../src/transport/graph-token-error.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

const entra = (status: number, body: object | string) =>
  parseTokenError(status, typeof body === 'string' ? body : JSON.stringify(body))

describe('token failure codes', () => {
  // settleLeases records consecutive token waits of a row once, recognising them by this shape.
  test('every one is token_… or AADSTS…', () => {
    const codes = [
      entra(500, { error: 'server_error', error_codes: [50000] }).code,
      entra(503, '<html>Service Unavailable</html>').code,
      entra(429, { error: 'temporarily_unavailable' }).code,
      entra(400, { error: 'invalid_request', error_description: 'AADSTS90002: Tenant not found.' })
        .code,
      entra(401, { error: 'invalid_client', error_codes: [700027] }).code,
      GraphAuthError.network(new DOMException('timed out', 'TimeoutError')).code,
      GraphAuthError.network(new TypeError('fetch failed')).code,
      new GraphAuthError('token_response_invalid', 'token response is not JSON', false, 200).code,
    ]
    expect(codes).toEqual([
      'AADSTS50000',
      'token_http_503',
      'token_http_429',
      'AADSTS90002',
      'AADSTS700027',
      'token_timeout',
      'token_network',
      'token_response_invalid',
    ])
    for (const code of codes) expect(code).toMatch(new RegExp(TOKEN_WAIT_CODE))
    // And a 401 to a stale token with too little of the deadline left for a fresh one: unsent.
    expect(TOKEN_REFUSED_LATE_CODE).toMatch(new RegExp(TOKEN_WAIT_CODE))
    // So are Graph's own outage waits (out of reach, refusing every token): recorded once per run.
    for (const code of [GRAPH_UNREACHABLE_CODE, GRAPH_UNAUTHORIZED_CODE])
      expect(code).toMatch(new RegExp(TOKEN_WAIT_CODE))
    // Graph's own codes, a lookup's and the pacing give-back's are not token waits.
    for (const code of [
      'ApplicationThrottled',
      'http_503',
      'lookup_failed',
      'graph_unreachable_soon',
      'mailbox_paced',
      'timeout',
    ])
      expect(code).not.toMatch(new RegExp(TOKEN_WAIT_CODE))
  })
})
