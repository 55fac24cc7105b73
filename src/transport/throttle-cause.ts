// Why a send or lookup was told to wait, as outbox_graph_throttled_total's `cause` and `service` labels say it: a throttle, the provider unavailable, out of reach, or another wait; Entra's (no token) or Graph's.

import { NO_TOKEN_CODE } from '../outbox/settle-item.ts'
import { GRAPH_UNREACHABLE_CODE } from './graph-outage.ts'
import { isMailboxQuota } from './graph-outcome.ts'
import { isEntraThrottle } from './graph-token-error.ts'

/**
 * Every value, each exported at 0 from a worker's start (an alert's increase() sees the first):
 * `throttled` a 429 (Graph's or Entra's), Entra's throttling codes that come with another 4xx
 * (isEntraThrottle: AADSTS90055, AADSTS50196, which the token source waits out as throttles) or a
 * mailbox's quota (its sending quota spent, its store full: isMailboxQuota), a send's or a
 * lookup's, which keeps Graph's code: the provider's limits, which end by themselves while other
 * sends go; `unavailable` a 5xx: Graph's 503 or 504 (Graph down, or a gateway timing out), or Entra
 * failing a token request (AADSTS50000's 500, a 502, 503 or 504: Entra down): an outage when
 * nothing goes (a Graph 5xx else is a counted attempt, never a wait); `unreachable` no connection
 * (Graph out of reach, Entra out of reach or not answering in time); `other` the rest: Entra
 * refusing the credential, Graph refusing every token (which "Credential refused", "Token
 * failures" and "Graph out of reach" name), a mailbox lookup asked again later (too early to tell,
 * or failed), the database's id unread.
 */
export const THROTTLE_CAUSES = ['throttled', 'unavailable', 'unreachable', 'other'] as const
export type ThrottleCause = (typeof THROTTLE_CAUSES)[number]

/** Codes of a wait for a token whose request met no answer (graph-token-error.ts). */
const NO_ANSWER_TOKEN_CODES: ReadonlySet<string> = new Set([
  'token_network',
  'token_timeout',
  'token_slow',
])

/** The cause of a wait recorded with `code` (the row's last error code) after an answer of `httpStatus`, if any. */
export function throttleCause(
  code: string | undefined,
  httpStatus: number | undefined,
): ThrottleCause {
  if (httpStatus === 429 || isMailboxQuota(code) || isEntraThrottle(code)) return 'throttled'
  if (httpStatus !== undefined && httpStatus >= 500) return 'unavailable'
  if (code === GRAPH_UNREACHABLE_CODE || (code !== undefined && NO_ANSWER_TOKEN_CODES.has(code)))
    return 'unreachable'
  return 'other'
}

/**
 * Which service told the send or lookup to wait, outbox_graph_throttled_total's `service` label,
 * each exported at 0 with every cause: `entra` a wait for a token (NO_TOKEN_CODE's codes: Entra
 * down, throttling, out of reach or refusing the credential), `graph` Graph's own answer, or Graph
 * out of reach or refusing every token. Both fail the same rows, but an Entra outage is no Graph
 * outage: "Graph turning sends away" reads Graph's 503s and 504s alone (an Entra outage while an
 * earlier throttle's pause stood fired it, pointing at Graph's service health).
 */
export const THROTTLE_SERVICES = ['graph', 'entra'] as const
export type ThrottleService = (typeof THROTTLE_SERVICES)[number]

const NO_TOKEN = new RegExp(NO_TOKEN_CODE)

/** The service whose answer (or silence) made a wait recorded with `code`. */
export function throttleService(code: string | undefined): ThrottleService {
  return code !== undefined && NO_TOKEN.test(code) ? 'entra' : 'graph'
}
