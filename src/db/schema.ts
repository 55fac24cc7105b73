// Kysely table types for the mailer schema; row types mirror the SQL (snake_case, bigint ids as strings).
import type { ColumnType, Generated, Selectable } from 'kysely'

type NullableTimestamp = ColumnType<Date | null, Date | string | null, Date | string | null>
/** A timestamp with a database default: optional on insert. */
type DefaultTimestamp = ColumnType<Date, Date | string | undefined, Date | string>

export type OutboxStatus = 'pending' | 'sending' | 'sent' | 'failed' | 'cancelled'
export const OUTBOX_STATUSES: readonly OutboxStatus[] = [
  'pending',
  'sending',
  'sent',
  'failed',
  'cancelled',
]

interface EmailOutboxTable {
  id: Generated<string>
  tenant: Generated<string>
  dedupe_key: string | null
  status: Generated<OutboxStatus>
  priority: Generated<number>
  send_at: DefaultTimestamp
  expires_at: NullableTimestamp
  attempts: Generated<number>
  max_attempts: number | null
  last_error_code: string | null
  last_error: string | null
  created_at: DefaultTimestamp
  sent_at: NullableTimestamp
  correlation_id: string | null
  message: unknown | null
  template: string | null
  source_row: unknown | null
  lease_owner: string | null
  lease_token: string | null
  lease_expires_at: NullableTimestamp
  send_started_at: NullableTimestamp
  // The deadline of the send that start began, noted with it by the last check (sql/0078).
  send_deadline_at: NullableTimestamp
  cancel_requested_at: NullableTimestamp
  // The claim only looks an interrupted send up (lease.ts lookupOnly), noted by it (sql/0162): true, else null; read by the reclaim.
  lease_lookup_only: boolean | null
  // Written by triggers (sql/0039, 0040, 0042) and by a retry (requeue.ts); read by the claims in SQL.
  sender_key: string | null
}

interface EmailAttemptsTable {
  id: Generated<string>
  outbox_id: string
  attempt: number
  worker_id: string | null
  started_at: NullableTimestamp
  finished_at: DefaultTimestamp
  outcome: string
  http_status: number | null
  request_id: string | null
  error_code: string | null
  error: string | null
  /** What the entry records (sql/0189, outbox/history-kind.ts); null: written by an older binary. */
  kind: string | null
}

interface TemplatesTable {
  name: string
  subject: string
  text_body: string | null
  html_body: string | null
  to_addresses: Generated<string[]>
  cc_addresses: Generated<string[]>
  bcc_addresses: Generated<string[]>
  reply_to: string | null
  from_address: string | null
  created_at: DefaultTimestamp
  updated_at: DefaultTimestamp
}

interface WorkersTable {
  id: string
  host: string
  pid: number
  version: string
  started_at: DefaultTimestamp
  last_heartbeat_at: DefaultTimestamp
  /** The key the worker's claimed rows name it by (lease_owner, sql/0055); null: an older binary's. */
  lease_key: string | null
  /** GRAPH_REQUEST_TIMEOUT_SECONDS it sends under (sql/0070); null: no Graph, or an older binary's. */
  request_timeout_seconds: number | null
  /** Its MAIL_FROM's pause key, whose owed probe it honours (sql/0079); '' none; null: an older binary's. */
  probe_mailbox: string | null
  /** Its LEASE_SECONDS, by which it is judged live (sql/0084); null: an older binary's. */
  lease_seconds: number | null
  /** Entra's code while it refuses the worker's Graph credential (sql/0198); null: none, or an older binary's. */
  credential_refused_code: string | null
  /** When that refusal began (database time); null with no code. */
  credential_refused_since: NullableTimestamp
  /** While refused: until when its cached token serves sends (sql/0202, database time); null: none serves, or an older binary's. */
  credential_serves_until: NullableTimestamp
  /** When it last recorded a row sent (sql/0201, database time); null: none since it started, or an older binary's. */
  last_sent_at: NullableTimestamp
}

interface SchemaMigrationsTable {
  version: number
  name: string
  checksum: string
  applied_at: DefaultTimestamp
}

export interface Database {
  'mailer.email_outbox': EmailOutboxTable
  'mailer.email_attempts': EmailAttemptsTable
  'mailer.templates': TemplatesTable
  'mailer.workers': WorkersTable
  'mailer.schema_migrations': SchemaMigrationsTable
}

export type OutboxRow = Selectable<EmailOutboxTable>
export type AttemptRow = Selectable<EmailAttemptsTable>
export type TemplateRow = Selectable<TemplatesTable>
