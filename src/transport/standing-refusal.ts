// Entra's refusal of the credential for good, as the token source's last answer stands: whether it blocks sends, and readiness' words for it.
import { entraRefusalHint } from './entra-refusal-hints.ts'
import type { GraphAuthError } from './graph-token-error.ts'
import type { TokenSource } from './token-source.ts'

/**
 * Entra's refusal for good (the last token request's answer), standing until a token comes, whether
 * or not a cached token still serves; else null. Every view of the credential's state reads it.
 */
export function standingRefusal(tokens: TokenSource): GraphAuthError | null {
  const e = tokens.lastError()
  return e?.permanent ? e : null
}

/**
 * The standing refusal while it blocks sends: no cached token serves (failingWith is null while one
 * is usable: a row is never sent with one past its use) and Entra is not asked again for `forMs`.
 */
export function sendBlock(tokens: TokenSource): { refusal: GraphAuthError; forMs: number } | null {
  const refusal = standingRefusal(tokens)
  if (refusal === null || tokens.failingWith() === null) return null
  const forMs = tokens.refusedForMs()
  return forMs > 0 ? { refusal, forMs } : null
}

/** Entra's refusal for good, reported until a token comes (readiness: a problem, or a warning). */
export function refusalReason(tokens: TokenSource): string | null {
  const e = standingRefusal(tokens)
  if (e === null) return null
  // Once no cached token serves, only a send asks Entra again (the refresh-ahead timer asks while
  // one serves): with no mail due, a fixed credential would stay reported as refused. Past the
  // cooldown, a readiness probe asks (one request at a time; never throws).
  if (tokens.refusedForMs() === 0) tokens.getToken().catch(() => {})
  const hint = entraRefusalHint(e.code)
  return `graph token refused: ${e.code}${hint ? `: ${hint}` : ''} (fix the app registration or credential)`
}
