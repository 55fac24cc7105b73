// API_JWKS_URL's fetches that give jose no key set: one held off after a failed fetch, and an answer of a set without a key.

/** A fetch not made: the last one failed less than KEYS_HOLD_OFF_MS (signing-keys.ts) ago (`failure`). */
export class HeldOff extends Error {
  constructor(readonly failure: unknown) {
    super('the key set is not fetched again yet after a failed fetch')
  }
}

/**
 * An answer of `{"keys": []}`: no token can be verified against it, a good one included, so it is the
 * identity provider's answer that is wrong (a publication gone wrong, a tenant mid-migration), not
 * the token: an outage (503, held off, logged once), not a 401 that tells the client to get another.
 */
export class EmptyKeySet extends Error {
  constructor() {
    super('the key set holds no key')
  }
}

/** Whether a 200's body is a key set without a key; anything else is jose's to judge. */
export async function holdsNoKey(response: { json(): Promise<unknown> }): Promise<boolean> {
  const body: unknown = await response.json().catch(() => null)
  const keys = (body as { keys?: unknown } | null)?.keys
  return Array.isArray(keys) && keys.length === 0
}
