// The status command's --json shape: one database's judged reading and the whole report; keys are stable (README, "status").
import type { SchemaVerdict } from '../db/schema-state.ts'
import type { CredentialRefused } from '../outbox/credential-refusals.ts'
import type { StatusError } from './status-error.ts'

export type Health = 'ok' | 'attention' | 'schema' | 'permission' | 'unreachable'

/** One database in the --json output. Keys are stable: add, never rename (README, "status"). */
export interface DatabaseStatus {
  name: string
  health: Health
  /** Why the health is not ok, one sentence each. */
  reasons: string[]
  reachable: boolean
  error: StatusError | null
  /** The server takes no writes (a hot standby, or set read-only); null when not read. */
  readOnly: boolean | null
  schema: {
    verdict: SchemaVerdict
    database: number | null
    binary: number
    missing: string[]
    newer: number[]
  } | null
  counts: {
    pending: number
    sending: number
    sent: number
    failed: number
    cancelled: number
  } | null
  oldestDuePendingSeconds: number | null
  /**
   * Seconds rows have waited with no row sent: since the later of the newest send (among the newest
   * 10,000 rows, or noted in a worker's registry entry or kept from a stopped one's) and the
   * oldest waiting row's coming due, among those rows (none-sent-for.ts); past --max-send-gap while
   * a throttle's pause or Graph out of reach holds the rows, exit 5. Null when none waits, when not
   * read, or when the outbox holds 10,000 rows or more, the newest 10,000 hold no sent row and no
   * note says one (a larger backlog); a smaller outbox with none ever sent reads since its oldest
   * waiting row came due.
   */
  noneSentForSeconds: number | null
  /** Pending rows a pacing turn or a pause of their mailbox made due later (not in the age above). */
  heldBackPending: number | null
  /** Pending rows past their expiresAt (/v1/stats' pastExpiryPending): waiting for a lookup, or a sweep. */
  pastExpiryPending: number | null
  claims: { rows: number; workers: number; overdueLeases: number } | null
  workers: { live: number } | null
  /**
   * The live workers whose registry entry notes that Entra refuses their Graph credential (sql/0198),
   * their codes (AADSTS…, certificate_expired; never Entra's text) and since when (ISO, the earliest),
   * and how many of them still send on a cached token and until when (the first end; sql/0202):
   * /v1/stats' credentialRefused; exit 5 while `workers` is above 0 and rows are pending. Null when
   * the counts were not read.
   */
  credentialRefused: CredentialRefused | null
  listener: { sessions: number } | null
  /**
   * `count` is /v1/stats' pausedMailboxes (a number there) and the outbox_mailboxes_paused gauge, by
   * one rule (paused-now.ts). `longestSeconds` null with a count: a pause without end (next_at
   * 'infinity', hand-written). `refused`: of them, those Graph refuses (a mistyped MAIL_FROM, the app
   * not let send from it), as the pause keeps its cause (sql/0172); the others a provider throttle's.
   * `refusedPending`: the pending rows that send from a refused one (/v1/stats'
   * refusedMailboxPending), the exit 5's count; null when the counts were not read.
   */
  pausedMailboxes: {
    count: number
    longestSeconds: number | null
    refused: number
    refusedPending: number | null
  } | null
  /**
   * The MAILBOX_RATE_PER_MINUTE every worker paces by (the newest worker's; 0: none), the worker id
   * whose start noted it (null: an older binary's) and when (ISO, or 'infinity' / '-infinity' as
   * hand-written); null when no worker noted one.
   */
  pacing: { ratePerMinute: number; notedBy: string | null; notedAt: string } | null
  failedLast24h: {
    total: number
    byCode: { code: string | null; rows: number }[]
    /** False: the newest 10,000 failed rows were looked at and more are kept: `total` is a lower bound. */
    complete: boolean
  } | null
  /**
   * Pending rows whose last try met an error, by code (a refused credential or mailbox, a
   * throttle, Graph out of reach): they wait uncounted, in neither the failures nor the exit code.
   */
  pendingLastErrors: {
    total: number
    byCode: { code: string; rows: number }[]
    /** False: more than 10,000 such rows wait; the first 10,000 in the claim's order were counted. */
    complete: boolean
  } | null
}

export interface StatusReport {
  version: string
  /** Judged against these, so that a reader of the JSON knows what "attention" meant. */
  thresholds: Thresholds
  exitCode: number
  /** Process warnings raised while the command ran (a library's, e.g. about a URL's sslmode): one line each, secrets masked. */
  warnings: string[]
  databases: DatabaseStatus[]
}

export interface Thresholds {
  maxPendingAgeSeconds: number
  leaseSeconds: number
  /** --max-send-gap; judge takes DEFAULT_MAX_SEND_GAP_SECONDS when not given. */
  maxSendGapSeconds?: number
}
