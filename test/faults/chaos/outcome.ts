// What the chaos left: every outbox row, every attempt, and what the Graph fake accepted for each row and when.
import type { HistoryKind } from '../../../src/outbox/history-kind.ts'
import type { Database, Graph } from '../harness.ts'
import { sendMailTimes } from '../send-counts.ts'
import { MAX_ATTEMPTS, REJECTED } from './settings.ts'

export interface OutboxRow {
  id: string
  status: string
  attempts: number
  max_attempts: number
  last_error_code: string | null
  last_error: string | null
  expires_at: Date | null
  sent_at: Date | null
  send_started_at: Date | null
  lease_owner: string | null
  lease_token: string | null
  lease_expires_at: Date | null
  /** Addressed to the recipient the fake rejects. */
  rejected: boolean
}

export interface AttemptEntry {
  outbox_id: string
  attempt: number
  worker_id: string | null
  outcome: string
  error_code: string | null
  error: string | null
  http_status: number | null
  /** What it records (sql/0189, history-kind.ts); null: an older release wrote it (CHAOS_OLDER_BINARY). */
  kind: HistoryKind | null
  /** Its lease made a send (the history records a start for a send only: send-verdict.ts). */
  started: boolean
  /** When the entry was written (finished_at, ms since the epoch). */
  finished_ms: number
}

export interface ChaosOutcome {
  rows: OutboxRow[]
  byId: Map<string, OutboxRow>
  historyOf: Map<string, AttemptEntry[]>
  /** How often the fake accepted each outbox id, and when. */
  accepted: Map<string, number>
  acceptedTimes: Map<string, number[]>
  /** When the fake received a sendMail for each row (sendMailTimes). */
  sendTimes: Map<string, number[]>
}

export async function readOutcome(db: Database, graph: Graph): Promise<ChaosOutcome> {
  const rows = await db.q<OutboxRow>(
    `select id::text, status, attempts, coalesce(max_attempts, ${MAX_ATTEMPTS}) as max_attempts,
            last_error_code, last_error, expires_at, sent_at, send_started_at,
            lease_owner, lease_token::text, lease_expires_at,
            message -> 'to' @> jsonb_build_array(jsonb_build_object('address', $1::text)) as rejected
       from mailer.email_outbox order by id`,
    [REJECTED],
  )
  const history = await db.q<AttemptEntry>(
    `select outbox_id::text, attempt, worker_id, outcome, error_code, error, http_status, kind,
            started_at is not null as started,
            (extract(epoch from finished_at) * 1000)::float8 as finished_ms
       from mailer.email_attempts order by outbox_id, id`,
  )
  const historyOf = new Map<string, AttemptEntry[]>()
  for (const h of history) historyOf.set(h.outbox_id, [...(historyOf.get(h.outbox_id) ?? []), h])
  const accepted = graph.acceptedCounts()
  const acceptedTimes = new Map<string, number[]>()
  for (const a of graph.fake.accepted) {
    if (a.outboxId)
      acceptedTimes.set(a.outboxId, [...(acceptedTimes.get(a.outboxId) ?? []), a.acceptedAt])
  }
  return {
    rows,
    byId: new Map(rows.map((r) => [r.id, r])),
    historyOf,
    accepted,
    acceptedTimes,
    sendTimes: sendMailTimes(graph),
  }
}
