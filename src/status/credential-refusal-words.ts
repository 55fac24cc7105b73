// A refused Graph credential in words: which workers, Entra's codes and what they mean, since when, and what to do.
import type { CredentialRefused } from '../outbox/credential-refusals.ts'
import { entraRefusalHint } from '../transport/entra-refusal-hints.ts'

/** What to do about a refused credential: the deploy guide's "Credential refused". */
export const CREDENTIAL_FIX =
  'nothing of theirs goes out once a token fetched before the refusal ends (an hour at most) until it is fixed (a new GRAPH_CLIENT_SECRET or GRAPH_CERTIFICATE, or the app registration mended: the deploy guide\'s "Credential refused")'

/**
 * "Entra refuses the Graph credential of N live worker(s) (CODE: what it means) since ISO", and,
 * while a cached token still serves some of them, until when they still send.
 */
export function credentialRefusalWords(c: CredentialRefused): string {
  const codes = c.codes
    .map((code) => {
      const hint = entraRefusalHint(code)
      return hint ? `${code}: ${hint}` : code
    })
    .join('; ')
  return `Entra refuses the Graph credential of ${c.workers} live worker(s) (${codes})${c.since ? ` since ${c.since}` : ''}${stillSending(c)}`
}

/**
 * The refused workers a cached token still serves (sql/0202): mail still goes until it ends, the
 * first end when several; '' when none. Database time, as the registry entry notes it.
 */
function stillSending(c: CredentialRefused): string {
  const n = c.cachedTokenWorkers
  if (n === 0 || c.cachedTokenServesUntil === null) return ''
  const until = `until ${c.cachedTokenServesUntil} (database time${n > 1 ? ', the first of them' : ''})`
  if (n === c.workers) {
    return n === 1
      ? `, still sending on its cached token ${until}`
      : `, still sending on their cached tokens ${until}`
  }
  return `, ${n} of them still sending on ${n === 1 ? 'its' : 'their'} cached token${n === 1 ? '' : 's'} ${until}`
}
