// claimBatch: the one statement that takes due rows, with a fresh lease per row, in database time.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

export interface Lease {
  id: string
  token: string
  tenant: string
  attempt: number
  maxAttempts: number
  correlationId: string | null
  message: unknown | null
  template: string | null
  sourceRow: Record<string, unknown> | null
  /** Past expires_at: must be failed with code `expired`, never sent. */
  expired: boolean
  /** Cancelled through the API while pending a claim (or before). */
  cancelRequested: boolean
  /** The previous attempt started a send and never learned its outcome (crash or abort mid-send). */
  ambiguous: boolean
  /** The claim itself recorded the send as started (ClaimParams.markStarted): no startSends needed. */
  started: boolean
}

// One claimed row as the claim's JSON array returns it (one JSON.parse per batch, not per field):
// [id, tenant, attempt, maxAttempts, correlationId, message, template, sourceRow, expired,
//  cancelRequested, ambiguous, started]
type LeaseTuple = [
  string,
  string,
  number,
  number,
  string | null,
  unknown | null,
  string | null,
  Record<string, unknown> | null,
  boolean,
  boolean,
  boolean,
  boolean,
]

export interface ClaimParams {
  limit: number
  workerId: string
  leaseSeconds: number
  defaultMaxAttempts: number
  /**
   * Record the send as started in the claim itself, for transports that send at once (no shared
   * limits to wait for): the claim is then the last check before the send. Never for ambiguous,
   * cancelled or expired rows.
   */
  markStarted?: boolean
}

/**
 * Claims up to `limit` due rows, ordered by priority, send_at, id.
 * Invariant: a row is `sending` only with a lease token and expiry; SKIP LOCKED keeps claimers disjoint.
 * Uses email_outbox_claim_idx (priority, send_at, id) where status = 'pending'.
 */
export interface Claim {
  leases: Lease[]
  /** When the claim took fewer rows than asked: ms until the earliest future send_at, if any. */
  nextDueInMs: number | null
}

export async function claimBatch(db: Kysely<Database>, p: ClaimParams): Promise<Claim> {
  if (p.limit <= 0) return { leases: [], nextDueInMs: null }
  // One token per claim: (id, token) is still unique per lease, since a row is claimed at most
  // once per statement, and it spares a random UUID per row.
  const token = crypto.randomUUID()
  const { rows } = await sql<{ leases: LeaseTuple[] | null; next_due_ms: number | null }>`
    with picked as (
      -- mailer.claim_candidates (sql/0003): SELECT … ORDER BY priority, send_at, id LIMIT n
      -- FOR UPDATE SKIP LOCKED, pinned to an ordered scan of email_outbox_claim_idx.
      select id, ambiguous, ord from mailer.claim_candidates(${p.limit}) with ordinality as c(id, ambiguous, ord)
    ), claimed as (
      -- = any(array(...)): a primary-key probe per picked row, never a scan of the whole table.
      update mailer.email_outbox o
         set status = 'sending',
             attempts = o.attempts + 1,
             lease_owner = ${p.workerId},
             lease_token = ${token}::uuid,
             lease_expires_at = now() + make_interval(secs => ${p.leaseSeconds}),
             -- An interrupted send's mark stays until it is resolved; a clean row may be marked now.
             send_started_at = case
               when o.send_started_at is not null then o.send_started_at
               when ${p.markStarted === true} and o.cancel_requested_at is null
                    and (o.expires_at is null or o.expires_at > now()) then now()
             end
       where o.id = any(array(select id from picked))
      returning o.id, o.tenant, o.attempts, coalesce(o.max_attempts, ${p.defaultMaxAttempts}) as max_attempts,
                o.correlation_id, o.message, o.template, o.source_row,
                coalesce(o.expires_at <= now(), false) as expired,
                o.cancel_requested_at is not null as cancel_requested,
                o.send_started_at is not null as marked
    )
    select json_agg(json_build_array(c.id::text, c.tenant, c.attempts, c.max_attempts, c.correlation_id,
                                     c.message, c.template, c.source_row, c.expired, c.cancel_requested,
                                     p.ambiguous, c.marked and not p.ambiguous) order by p.ord) as leases,
           -- Only a claim that found fewer due rows than it asked for looks ahead (an init plan,
           -- evaluated on first use), so the drainer can arm its timer without another statement.
           case when count(*) < ${p.limit} then
             (select extract(epoch from min(f.send_at) - now()) * 1000 from mailer.email_outbox f
               where f.status = 'pending' and f.send_at > now())::float8
           end as next_due_ms
      from claimed c join picked p on p.id = c.id`.execute(db)
  const ms = rows[0]?.next_due_ms ?? null
  return {
    leases: (rows[0]?.leases ?? []).map((r) => toLease(r, token)),
    nextDueInMs: ms === null ? null : Math.max(0, ms),
  }
}

function toLease(r: LeaseTuple, token: string): Lease {
  return {
    id: r[0],
    token,
    tenant: r[1],
    attempt: r[2],
    maxAttempts: r[3],
    correlationId: r[4],
    message: r[5],
    template: r[6],
    sourceRow: r[7],
    expired: r[8],
    cancelRequested: r[9],
    ambiguous: r[10],
    started: r[11],
  }
}
