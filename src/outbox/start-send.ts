// startSends: the last check before a send: cancel and expiry are honoured, and the send is recorded as started.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

export interface StartResult {
  started: Set<string>
  cancelled: Set<string>
  expired: Set<string>
  /** Leases no longer held: neither send nor settle these. */
  lost: Set<string>
}

/**
 * Marks the given leases as sending-now unless cancelled or expired, in one statement.
 * Row locks order this against the API's cancel: exactly one of them sees the other's write.
 * Fenced by (id, lease_token, status = 'sending'); send_started_at is not indexed (HOT update).
 */
export async function startSends(
  db: Kysely<Database>,
  leases: readonly { id: string; token: string }[],
): Promise<StartResult> {
  const result: StartResult = {
    started: new Set(),
    cancelled: new Set(),
    expired: new Set(),
    lost: new Set(),
  }
  if (leases.length === 0) return result
  const { rows } = await sql<{
    id: string
    started: boolean
    cancelled: boolean
    expired: boolean
  }>`
    /* prepared outbox_start_sends */ with input as (
      select * from unnest(${leases.map((l) => l.id)}::bigint[], ${leases.map((l) => l.token)}::uuid[]) as t(id, token)
    )
    update mailer.email_outbox o
       set send_started_at = case
             when o.cancel_requested_at is null and (o.expires_at is null or o.expires_at > now()) then now()
           end
      from input
     where o.id = input.id and o.lease_token = input.token and o.status = 'sending'
    returning o.id, o.send_started_at is not null as started,
              o.cancel_requested_at is not null as cancelled,
              (o.expires_at is not null and o.expires_at <= now()) as expired`.execute(db)
  for (const r of rows) {
    if (r.started) result.started.add(r.id)
    else if (r.cancelled) result.cancelled.add(r.id)
    else result.expired.add(r.id)
  }
  for (const l of leases) {
    if (!result.started.has(l.id) && !result.cancelled.has(l.id) && !result.expired.has(l.id)) {
      result.lost.add(l.id)
    }
  }
  return result
}
