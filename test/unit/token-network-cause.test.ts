// A token request that gets no answer names the host it could not reach and why: a host name is no secret.
import { expect, setDefaultTimeout, test } from 'bun:test'
import { systemClock } from '../../src/clock.ts'
import { secretCredential } from '../../src/transport/graph-credential.ts'
import { requestGraphToken } from '../../src/transport/graph-token-request.ts'
import { closedPort } from '../support/closed-port.ts'

// Per file: a preload's default timeout reaches only a run's first file (bun#43787).
setDefaultTimeout(30_000)

/** The error message of a token request to `tokenUrl` through `fetcher`. */
async function failureOf(tokenUrl: string, fetcher: typeof fetch = fetch, timeoutMs = 10_000) {
  try {
    await requestGraphToken({
      fetch: fetcher,
      clock: systemClock,
      tokenUrl,
      clientId: 'c',
      scope: 'https://graph.microsoft.com/.default',
      credential: secretCredential(crypto.randomUUID()),
      requestTimeoutMs: timeoutMs,
    })
  } catch (e) {
    return { code: (e as { code?: string }).code, message: (e as Error).message }
  }
  return null
}

test('a port nothing listens on is named with its host and "connection refused"', async () => {
  // Port 1, seen refused: a port just freed can be another run's server's by the time of the request.
  const port = await closedPort()
  const f = await failureOf(`http://127.0.0.1:${port}/tenant/oauth2/v2.0/token`)
  expect(f?.code).toBe('token_network')
  expect(f?.message).toContain(`127.0.0.1:${port}`)
  expect(f?.message).toContain('connection refused (ECONNREFUSED)')
})

test('a host name that does not resolve is named with its host and the DNS failure', async () => {
  // .invalid never resolves (RFC 2606).
  const f = await failureOf('https://login.example.invalid/tenant/oauth2/v2.0/token')
  expect(f?.code).toBe('token_network')
  expect(f?.message).toContain('login.example.invalid')
  expect(f?.message).toMatch(/does not resolve \(DNS: (ENOTFOUND|EAI_AGAIN)\)/)
})

test('a host that does not answer in time is named with its host and the timeout', async () => {
  // Entra's side faked: it takes the connection and never answers.
  const silent = ((_url: string, init: RequestInit) =>
    new Promise((_resolve, reject) => {
      init.signal?.addEventListener('abort', () => reject(init.signal?.reason))
    })) as unknown as typeof fetch
  const f = await failureOf('https://login.microsoftonline.com/t/oauth2/v2.0/token', silent, 50)
  expect(f?.code).toBe('token_timeout')
  expect(f?.message).toBe(
    'token request to login.microsoftonline.com timed out (no answer within 0.05 s)',
  )
})
