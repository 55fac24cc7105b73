// A refused Graph credential in words: which workers, Entra's codes and what they mean, since when, and what to do.
import type { CredentialRefused } from '../outbox/credential-refusals.ts'
import { entraRefusalHint } from '../transport/entra-refusal-hints.ts'

/** What to do about a refused credential: the deploy guide's "Credential refused". */
export const CREDENTIAL_FIX =
  'nothing of theirs goes out once a token fetched before the refusal ends (an hour at most) until it is fixed (a new GRAPH_CLIENT_SECRET or GRAPH_CERTIFICATE, or the app registration mended: the deploy guide\'s "Credential refused")'

/** "Entra refuses the Graph credential of N live worker(s) (CODE: what it means) since ISO". */
export function credentialRefusalWords(c: CredentialRefused): string {
  const codes = c.codes
    .map((code) => {
      const hint = entraRefusalHint(code)
      return hint ? `${code}: ${hint}` : code
    })
    .join('; ')
  return `Entra refuses the Graph credential of ${c.workers} live worker(s) (${codes})${c.since ? ` since ${c.since}` : ''}`
}
