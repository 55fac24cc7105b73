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

interface LeaseRow {
  id: string
  lease_token: string
  tenant: string
  attempts: number
  max_attempts: number
  correlation_id: string | null
  message: unknown | null
  template: string | null
  source_row: Record<string, unknown> | null
  expired: boolean
  cancel_requested: boolean
  ambiguous: boolean
  started: boolean
}

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
export async function claimBatch(db: Kysely<Database>, p: ClaimParams): Promise<Lease[]> {
  if (p.limit <= 0) return []
  const { rows } = await sql<LeaseRow>`
    with picked as (
      -- The locked row version: send_started_at still says whether the previous attempt began a send.
      select id, send_started_at is not null as ambiguous from mailer.email_outbox
       where status = 'pending' and send_at <= now()
       order by priority, send_at, id
       limit ${p.limit}
       for update skip locked
    )
    update mailer.email_outbox o
       set status = 'sending',
           attempts = o.attempts + 1,
           lease_owner = ${p.workerId},
           lease_token = gen_random_uuid(),
           lease_expires_at = now() + make_interval(secs => ${p.leaseSeconds}),
           send_started_at = case
             when ${p.markStarted === true} and not picked.ambiguous and o.cancel_requested_at is null
                  and (o.expires_at is null or o.expires_at > now()) then now()
           end
      from picked
     where o.id = picked.id
    returning o.id, o.lease_token, o.tenant, o.attempts,
              coalesce(o.max_attempts, ${p.defaultMaxAttempts})::int as max_attempts,
              o.correlation_id, o.message, o.template, o.source_row,
              (o.expires_at is not null and o.expires_at <= now()) as expired,
              o.cancel_requested_at is not null as cancel_requested,
              picked.ambiguous,
              o.send_started_at is not null as started`.execute(db)
  return rows.map(toLease).sort(byId)
}

const byId = (a: Lease, b: Lease) => (BigInt(a.id) < BigInt(b.id) ? -1 : 1)

function toLease(r: LeaseRow): Lease {
  return {
    id: r.id,
    token: r.lease_token,
    tenant: r.tenant,
    attempt: r.attempts,
    maxAttempts: r.max_attempts,
    correlationId: r.correlation_id,
    message: r.message,
    template: r.template,
    sourceRow: r.source_row,
    expired: r.expired,
    cancelRequested: r.cancel_requested,
    ambiguous: r.ambiguous,
    started: r.started,
  }
}

/** Milliseconds until the earliest future send_at, or null when nothing is scheduled. */
export async function nextDueInMs(db: Kysely<Database>): Promise<number | null> {
  const { rows } = await sql<{ ms: number | null }>`
    select (extract(epoch from min(send_at) - now()) * 1000)::float8 as ms
      from mailer.email_outbox where status = 'pending' and send_at > now()`.execute(db)
  const ms = rows[0]?.ms
  return ms === null || ms === undefined ? null : Math.max(0, ms)
}
