// Each row's acceptances by the Graph fake read against its attempt history: a resend after an interrupted send (allowed) or a double send (never).
import type { AttemptEntry } from './chaos/outcome.ts'
import { stoppedDuringSend } from './chaos/worker-stops.ts'
import type { Database, Graph } from './harness.ts'

/**
 * An entry of a send its own lease made (`started`) that may have delivered the message and whose
 * outcome was never learned: Graph never answered it for sure (a code of send-verdict.ts's
 * AMBIGUOUS_CODES, a gateway's 502 or 504, or an ending that says so: a retry past the expiresAt
 * ends the row expired, a recorded cancel cancelled). Not an entry that only names such a send,
 * counted by its own entry: a resend answered for sure ("HTTP 403 (an earlier interrupted send may
 * have delivered it)", before: "… (an earlier send was interrupted and may have delivered it)"),
 * an ending that sent nothing (an expiry, a cancel, a row no longer rendering, a hold:
 * ambiguous_send, whose words name the earlier send too), a lease given back unsent (the row's last
 * code kept).
 */
export const sendUnanswered = (h: AttemptEntry) =>
  h.started &&
  (['timeout', 'network', 'aborted'].includes(h.error_code ?? '') ||
    h.http_status === 502 ||
    h.http_status === 504 ||
    (h.http_status === null && /may have delivered/.test(h.error ?? '')))

/**
 * How many sends of a row may have delivered it unanswered, each counted once, read from its
 * history `hist` and `sendTimes`, when the Graph fake received a sendMail for it (Date.now(), as
 * finished_ms): each sendUnanswered entry, and each reclaim during the send whose lease sent one
 * (a sendMail came after the entry before it). The mark a reclaim reads may be an earlier send's,
 * which its own entry counts: a lease claimed with it whose worker stopped before sending again.
 * A lease's sendMail arrives by its reclaim: its send began with its request timeout and a margin
 * of the lease left (lease-deadlines.ts), its request is aborted at that deadline, the reclaim comes
 * after the lease's end, and the fake notes a request's arrival (`at`), not its answer. The one way
 * past that is a worker frozen whole between graph-request.ts's last look at the deadline and the
 * request's write: on resume it may write it (README, How it works, step 4). No chaos action does
 * that: CHAOS_PAUSES pauses mailboxes (throttles, owed probes), a kill or SIGTERM ends a worker's
 * writes, a slow database delays statements, not the worker; a starved worker would have to lose
 * the CPU for the margin (3 s of a 5 s lease) within those few statements. A soak that froze
 * workers would credit such a sendMail by the frozen worker's resume, which it follows within
 * milliseconds, not by the next claim's time: a freeze may outlast the next lease's own send.
 */
export function interruptedSends(
  hist: readonly AttemptEntry[],
  sendTimes: readonly number[] = [],
): number {
  return hist.filter((h, i) => {
    if (sendUnanswered(h)) return true
    if (!stoppedDuringSend(h)) return false
    const since = hist[i - 1]?.finished_ms ?? Number.NEGATIVE_INFINITY
    return sendTimes.some((t) => t > since && t <= h.finished_ms)
  }).length
}

/**
 * Of a row's `accepted` acceptances by the Graph fake, how many its `sends` (interruptedSends),
 * one acceptance each, and its own answered send, one more for a row marked sent, leave unexplained.
 * A row not sent (failed, cancelled) was never accepted once more.
 */
export const acceptancesUnexplained = (accepted: number, sends: number, markedSent: boolean) =>
  Math.max(0, accepted - sends - (markedSent ? 1 : 0))

/** When the Graph fake received a sendMail for each outbox id (of every database it serves). */
export function sendMailTimes(graph: Graph): Map<string, number[]> {
  const times = new Map<string, number[]>()
  for (const r of graph.fake.requests)
    if (r.kind === 'sendMail' && r.outboxId)
      times.set(r.outboxId, [...(times.get(r.outboxId) ?? []), r.at])
  return times
}

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
    `select outbox_id::text, attempt, worker_id, outcome, error_code, error, http_status, kind,
            started_at is not null as started,
            (extract(epoch from finished_at) * 1000)::float8 as finished_ms
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
  return sortAcceptances(repeated, historyOf, sendMailTimes(graph))
}

/**
 * sendCounts of rows accepted more than once (`repeated`: id, acceptances), read against their
 * histories and the fake's sendMails (sendMailTimes).
 */
export function sortAcceptances(
  repeated: readonly (readonly [string, number])[],
  historyOf: ReadonlyMap<string, readonly AttemptEntry[]>,
  sendTimesOf: ReadonlyMap<string, readonly number[]>,
): SendCounts {
  const counts: SendCounts = { duplicates: 0, ambiguousResends: 0, doubleSends: [] }
  for (const [id, n] of repeated) {
    const hist = historyOf.get(id) ?? []
    const explained = Math.min(n - 1, interruptedSends(hist, sendTimesOf.get(id)))
    counts.duplicates += n - 1
    counts.ambiguousResends += explained
    if (n - 1 > explained) counts.doubleSends.push({ id, accepted: n, history: historyLine(hist) })
  }
  return counts
}
