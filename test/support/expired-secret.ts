// A fake Entra holding a client secret past its end date: every token request answered AADSTS7000222, as graph.md §1.3 says.
import { afterAll, beforeAll } from 'bun:test'
import { type FakeGraph, startFakeGraph, type TokenFault } from './fake-graph.ts'

/** The secret the fake was registered with (no real secret: built here, never Entra's). */
export const EXPIRED_SECRET = 'a client secret Entra no longer takes'

/** Entra's answer to a token request with an expired secret of `entra`'s app. */
export function secretExpired(entra: FakeGraph): TokenFault {
  return {
    status: 401,
    error: 'invalid_client',
    aadsts: 7000222,
    description: `The provided client secret keys for app '${entra.clientId}' are expired.`,
  }
}

/** Makes `entra` answer its next `count` token requests as Entra answers an expired secret. */
export function answerSecretExpired(entra: FakeGraph, count: number): void {
  entra.setFaults({ token: Array.from({ length: count }, () => secretExpired(entra)) })
}

/** A fake Entra taking EXPIRED_SECRET, started once for the file and stopped after it. */
export function useEntraOfExpiredSecret(): () => FakeGraph {
  let entra: FakeGraph | undefined
  beforeAll(async () => {
    entra = await startFakeGraph({ clientSecret: EXPIRED_SECRET })
  })
  afterAll(async () => {
    await entra?.stop()
  })
  return () => {
    if (!entra) throw new Error('the fake Entra is started in beforeAll')
    return entra
  }
}
