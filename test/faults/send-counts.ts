// Each row's acceptances by the Graph fake read against its attempt history: a resend after an interrupted send (allowed) or a double send (never).
import type { AttemptEntry } from './chaos/outcome.ts'
import type { Database, Graph } from './harness.ts'

/** An attempt that may have delivered the message and whose outcome was never learned. */
export const ambiguousEpisode = (h: AttemptEntry) =>
  ['timeout', 'network', 'aborted', 'ambiguous_send'].includes(h.error_code ?? '') ||
  h.http_status === 504 ||
  (h.outcome === 'lease_expired' && /during the send/.test(h.error ?? '')) ||
  // Such a send whose retry would come after expiresAt: the row fails as expired, saying so.
  /may have delivered/.test(h.error ?? '')

export interface DoubleSend {
  id: string
  accepted: number
  /** attempt:outcome/error_code/http_status, in order. */
  history: string
}

export interface SendCounts {
  /** Acceptances beyond the first, summed over the rows (Graph.duplicates). */
  duplicates: number
  /** Of those, the ones an interrupted earlier send of the row explains (AMBIGUOUS_SEND_POLICY=resend). */
  ambiguousResends: number
  /** Rows accepted more often than their interrupted sends explain: the promise broken. */
  doubleSends: DoubleSend[]
}

export const historyLine = (hist: readonly AttemptEntry[]) =>
  hist
    .map(
      (h) =>
        `${h.attempt}:${h.outcome}${h.error_code ? `/${h.error_code}` : ''}${h.http_status ? `/${h.http_status}` : ''}`,
    )
    .join(' ')

/** The attempt history of `ids`, each row's in order. */
export async function attemptHistory(
  db: Database,
  ids: readonly string[],
): Promise<Map<string, AttemptEntry[]>> {
  const rows = await db.q<AttemptEntry>(
    `select outbox_id::text, attempt, worker_id, outcome, error_code, error, http_status
       from mailer.email_attempts where outbox_id = any($1::bigint[]) order by outbox_id, id`,
    [ids],
  )
  const historyOf = new Map<string, AttemptEntry[]>()
  for (const h of rows) historyOf.set(h.outbox_id, [...(historyOf.get(h.outbox_id) ?? []), h])
  return historyOf
}

/**
 * Sorts the fake's repeated acceptances of `ids` (all ids: undefined): each row may be sent once
 * more per attempt of it whose outcome was never learned; beyond that it is a double send.
 * Of the fake's acceptances, `db`'s own (Database.ownsAcceptance) where it takes several databases'.
 */
export async function sendCounts(
  db: Database,
  graph: Graph,
  ids?: readonly string[],
): Promise<SendCounts> {
  const only = ids ? new Set(ids) : null
  const repeated = [...graph.acceptedCounts(db.ownsAcceptance)].filter(
    ([id, n]) => n > 1 && (!only || only.has(id)),
  )
  const historyOf = await attemptHistory(
    db,
    repeated.map(([id]) => id),
  )
  const counts: SendCounts = { duplicates: 0, ambiguousResends: 0, doubleSends: [] }
  for (const [id, n] of repeated) {
    const hist = historyOf.get(id) ?? []
    const explained = Math.min(n - 1, hist.filter(ambiguousEpisode).length)
    counts.duplicates += n - 1
    counts.ambiguousResends += explained
    if (n - 1 > explained) counts.doubleSends.push({ id, accepted: n, history: historyLine(hist) })
  }
  return counts
}
