// The rows whose message the Graph fake accepted but whose outbox row is not sent, each told in full: the soak prints them.
import type { Database, Graph } from '../harness.ts'
import type { ChaosOutcome } from './outcome.ts'
import type { TimelineEntry } from './record.ts'

interface TimedAttempt {
  outbox_id: string
  attempt: number
  worker_id: string | null
  started_at: Date | null
  finished_at: Date
  outcome: string
  error_code: string | null
  error: string | null
  http_status: number | null
}

export interface AcceptedNotSent {
  /** Accepted messages whose row is not `sent` (an accepted message without an outbox id counts too). */
  count: number
  /** One paragraph per such row: its state, what Graph saw of it, its history, what the harness did to it. */
  lines: string[]
}

// A send accepted is recorded within its lease, or reclaimed once the lease ends (8 s in the soak).
const AROUND_BEFORE_MS = 2_000
const AROUND_AFTER_MS = 20_000

const clock = (ms: number) => new Date(ms).toISOString().slice(11, 23)

/**
 * "Graph took it but the outbox does not say so": a user would see a row failed or cancelled
 * that went out. Each is named with everything that tells a late recording (the row still in
 * flight) from a row settled against what Graph did.
 */
export async function acceptedNotSent(
  db: Database,
  graph: Graph,
  outcome: ChaosOutcome,
  timeline: readonly TimelineEntry[],
): Promise<AcceptedNotSent> {
  const { fake } = graph
  const unnamed = fake.accepted.filter((a) => a.outboxId === null)
  const ids = [...outcome.accepted.keys()].filter((id) => outcome.byId.get(id)?.status !== 'sent')
  const lines: string[] = unnamed.map(
    (a) => `accepted at ${clock(a.acceptedAt)} from ${a.mailbox} without an outbox id`,
  )
  if (ids.length === 0) return { count: unnamed.length, lines }
  const history = await db.q<TimedAttempt>(
    `select outbox_id::text, attempt, worker_id, started_at, finished_at, outcome, error_code, error, http_status
       from mailer.email_attempts where outbox_id = any($1::bigint[]) order by outbox_id, id`,
    [ids],
  )
  let count = unnamed.length
  for (const id of ids) {
    const r = outcome.byId.get(id)
    if (!r) continue
    const times = outcome.acceptedTimes.get(id) ?? []
    count += times.length
    const requests = fake.requests
      .filter((q) => q.outboxId === id)
      .map(
        (q) =>
          `${q.kind} ${clock(q.at)}→${q.answeredAt === null ? 'unanswered' : clock(q.answeredAt)} ${q.status ?? '-'}${q.fault ? ` ${q.fault}` : ''}${q.found === undefined ? '' : ` found ${q.found}`}${q.closedAt === undefined ? '' : ` closed ${clock(q.closedAt)}`}`,
      )
    const attempts = history
      .filter((h) => h.outbox_id === id)
      .map(
        (h) =>
          `${h.attempt}:${h.outcome}${h.error_code ? `/${h.error_code}` : ''}${h.http_status ? `/${h.http_status}` : ''} ${h.started_at ? clock(h.started_at.getTime()) : '-'}→${clock(h.finished_at.getTime())} ${h.worker_id ?? 'api'}${h.error ? ` "${h.error}"` : ''}`,
      )
    const harness = timeline
      .filter((t) => t.ids?.includes(id))
      .map((t) => `${clock(t.at)} ${t.what}`)
    // The harness's faults from just before the first acceptance on (what the row's settling met).
    const from = Math.min(...times) - AROUND_BEFORE_MS
    const to = Math.max(...times) + AROUND_AFTER_MS
    const around = timeline
      .filter((t) => !t.ids && t.at >= from && t.at <= to)
      .map((t) => `${clock(t.at)} ${t.what}`)
    lines.push(
      [
        `row ${id}: ${r.status} ${r.last_error_code ?? '-'} attempts ${r.attempts}/${r.max_attempts}, accepted at ${times.map(clock).join(', ')}; last error: ${r.last_error ?? '-'}`,
        `  graph:   ${requests.join('; ') || '-'}`,
        `  history: ${attempts.join('\n           ') || '-'}`,
        `  harness: ${harness.join('; ') || '-'}`,
        `  around:  ${around.join('; ') || '-'}`,
      ].join('\n'),
    )
  }
  return { count, lines }
}
