// credentialRefused as /v1/stats and status read it with no live worker refused: what tests of other readings expect.
import type { CredentialRefused } from '../../src/outbox/credential-refusals.ts'

/** No live worker refused, none still sending on a cached token. */
export const NO_CREDENTIAL_REFUSED: CredentialRefused = {
  workers: 0,
  codes: [],
  since: null,
  cachedTokenWorkers: 0,
  cachedTokenServesUntil: null,
}
