// An outage told by the database alone: rows waited past --max-send-gap with none sent while a throttle pauses mailboxes, Graph is out of reach or Entra gives no token.
import { NO_TOKEN_CODE } from '../outbox/settle-item.ts'
import { GRAPH_UNAUTHORIZED_CODE, GRAPH_UNREACHABLE_CODE } from '../transport/graph-outage.ts'
import type { DatabaseReading } from './database-status.ts'

/** The codes rows wait on while Graph is out of reach or refuses every token: no mailbox is paused then. */
const GRAPH_AWAY_CODES: ReadonlySet<string> = new Set([
  GRAPH_UNREACHABLE_CODE,
  GRAPH_UNAUTHORIZED_CODE,
])
/**
 * The codes of a row that waits for a token Entra did not give (NO_TOKEN_CODE: token_timeout,
 * token_slow, token_http_<status>, Entra's AADSTS…, a certificate outside its dates): that wait
 * pauses no mailbox, and each row goes back ahead of the token's delay.
 */
const ENTRA_AWAY_CODE = new RegExp(NO_TOKEN_CODE)

/**
 * An outage, told by the database alone: rows have waited with no row sent for longer than
 * `maxGapSeconds` (none-sent-for.ts) while a throttle's pause stands (Graph answering 503 or 504, or
 * 429, to every send: each mailbox paused 30 s or its Retry-After at a time, one request probing it
 * at each end, its rows given back to the pause's end, so that --max-pending-age reads nothing for 10
 * minutes), or while rows wait on Graph out of reach or refusing every token, or on Entra giving no
 * token (NO_TOKEN_CODE's codes), their code among the pending rows' five
 * most frequent: such a wait pauses no mailbox. A throttle between sends is none: the rows go
 * between its answers. A refused mailbox or credential has a reason of its own. Null when none.
 */
export function outageReason(r: DatabaseReading, maxGapSeconds: number): string | null {
  const gap = r.pauses?.noneSentForSeconds ?? null
  const pending = r.stats?.counts.pending ?? 0
  if (gap === null || gap <= maxGapSeconds || pending === 0) return null
  const throttles = r.pauses ? r.pauses.mailboxes - r.pauses.refused : 0
  const away = (r.pendingErrors?.byCode ?? []).filter((c) => GRAPH_AWAY_CODES.has(c.code))
  const entra = (r.pendingErrors?.byCode ?? []).filter((c) => ENTRA_AWAY_CODE.test(c.code))
  const on = [
    ...(throttles > 0
      ? [
          `${throttles} sender mailbox(es) paused by a provider throttle: most likely a Graph outage answering 503 or 504 (or 429) to every send`,
        ]
      : []),
    ...(away.length > 0
      ? [
          `Graph out of reach or refusing every token (${away.map((c) => `${c.code} ${c.rows}`).join(', ')}): the deploy guide's "Graph out of reach"`,
        ]
      : []),
    ...(entra.length > 0
      ? [
          `Entra giving no token: hung, out of reach, failing or refusing the token requests (${entra.map((c) => `${c.code} ${c.rows}`).join(', ')}): the deploy guide's "Token failures"`,
        ]
      : []),
  ]
  if (on.length === 0) return null
  return `no row sent for ${Math.round(gap)} s (more than --max-send-gap, ${maxGapSeconds} s) while ${pending} pending row(s) wait on ${on.join('; and on ')} (Microsoft 365's service health says whether Graph is down; the pending rows' codes below say what it answered; nothing is lost or counted as an attempt meanwhile)`
}
