// The domain's view of an outbox row and its attempts: camelCase, mapped from the snake_case columns.
import type { AttemptRow, OutboxRow, OutboxStatus } from '../db/schema.ts'
import { type HistoryKind, kindOf } from './history-kind.ts'

/** Every column except the bodies (message, source_row): what lists return. */
export const SUMMARY_COLUMNS = [
  'id',
  'tenant',
  'dedupe_key',
  'status',
  'priority',
  'send_at',
  'expires_at',
  'attempts',
  'max_attempts',
  'last_error_code',
  'last_error',
  'created_at',
  'sent_at',
  'correlation_id',
  'template',
  'lease_owner',
  'lease_token',
  'lease_expires_at',
  'send_started_at',
  'cancel_requested_at',
] as const

type SummaryRow = Pick<OutboxRow, (typeof SUMMARY_COLUMNS)[number]>

export interface OutboxSummary {
  id: string
  tenant: string
  dedupeKey: string | null
  status: OutboxStatus
  priority: number
  sendAt: Date
  expiresAt: Date | null
  attempts: number
  maxAttempts: number | null
  lastErrorCode: string | null
  lastError: string | null
  createdAt: Date
  sentAt: Date | null
  correlationId: string | null
  template: string | null
  leaseOwner: string | null
  leaseToken: string | null
  leaseExpiresAt: Date | null
  sendStartedAt: Date | null
  cancelRequestedAt: Date | null
}

export interface OutboxRecord extends OutboxSummary {
  message: unknown
  sourceRow: unknown
}

export interface Attempt {
  id: string
  attempt: number
  workerId: string | null
  startedAt: Date | null
  finishedAt: Date
  outcome: string
  httpStatus: number | null
  requestId: string | null
  errorCode: string | null
  error: string | null
  /** What the entry records (history-kind.ts); null: an entry of a binary before sql/0189. */
  kind: HistoryKind | null
}

// schema.ts declares some timestamps as Generated<Timestamp>, which this Kysely version selects as the
// ColumnType itself; pg always returns a Date, so normalise at runtime instead of casting.
const toDate = (v: unknown): Date => (v instanceof Date ? v : new Date(String(v)))
const toDateOrNull = (v: unknown): Date | null => (v === null || v === undefined ? null : toDate(v))

export function toOutboxSummary(r: SummaryRow): OutboxSummary {
  return {
    id: String(r.id),
    tenant: r.tenant,
    dedupeKey: r.dedupe_key,
    status: r.status,
    priority: r.priority,
    sendAt: toDate(r.send_at),
    expiresAt: toDateOrNull(r.expires_at),
    attempts: r.attempts,
    maxAttempts: r.max_attempts,
    lastErrorCode: r.last_error_code,
    lastError: r.last_error,
    createdAt: toDate(r.created_at),
    sentAt: toDateOrNull(r.sent_at),
    correlationId: r.correlation_id,
    template: r.template,
    leaseOwner: r.lease_owner,
    leaseToken: r.lease_token,
    leaseExpiresAt: toDateOrNull(r.lease_expires_at),
    sendStartedAt: toDateOrNull(r.send_started_at),
    cancelRequestedAt: toDateOrNull(r.cancel_requested_at),
  }
}

export function toOutboxRecord(r: OutboxRow): OutboxRecord {
  return { ...toOutboxSummary(r), message: r.message ?? null, sourceRow: r.source_row ?? null }
}

export function toAttempt(r: AttemptRow): Attempt {
  return {
    id: String(r.id),
    attempt: r.attempt,
    workerId: r.worker_id,
    startedAt: toDateOrNull(r.started_at),
    finishedAt: toDate(r.finished_at),
    outcome: r.outcome,
    httpStatus: r.http_status,
    requestId: r.request_id,
    errorCode: r.error_code,
    error: r.error,
    kind: kindOf(r.outcome, r.kind),
  }
}
