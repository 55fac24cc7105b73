// Whether a send's wait for its token turns slow before the token comes: the request then goes back unsent, unless kept.
import type { TokenSource } from './token-source.ts'

/**
 * Whether the token `pending` waits for turns slow first (TOKEN_SLOW_MS unanswered, no cached
 * token serving): the request then goes back unsent, due at once for a worker with a token, as a
 * row waiting for the token before its send does (graph-sender.ts `ready`). Its one wait here is
 * after a 401 dropped the cached token: the fresh one's request hanging held the row for the
 * rest of its deadline (30 s), then gave it back token_timeout, due 5 s later. A worker alone
 * still does (the caller's `kept`): it claims nothing while its request is slow (drainer.ts), so
 * the row given back would wait for that request all the same, a history entry and a claim more.
 */
export async function tokenTurnsSlow(
  tokens: Pick<TokenSource, 'endsOrSlows' | 'slowRequest'>,
  pending: Promise<string>,
): Promise<boolean> {
  const slowed = tokens.endsOrSlows()
  if (slowed === null) return false
  const first = await Promise.race([
    pending.then(
      () => 'token' as const,
      () => 'token' as const,
    ),
    slowed.then(() => 'slowed' as const),
  ])
  // Ended rather than slowed (both settle then), or a token serves: the caller reads `pending`.
  if (first !== 'slowed' || tokens.slowRequest() === null) return false
  pending.catch(() => {})
  return true
}
