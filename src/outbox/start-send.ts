// startSends: the last check before a send: cancel and expiry are honoured, and the send is recorded as started.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

export interface StartResult {
  started: Set<string>
  cancelled: Set<string>
  expired: Set<string>
  /**
   * Leases no longer held, or ended (past their expiry in database time, even if no reclaim took
   * them yet): never send these. A release fenced by the token hands back an ended one uncounted.
   */
  lost: Set<string>
}

/**
 * Marks the given leases as sending-now unless cancelled or expired, in one statement:
 * mailer.start_sends (sql/0007, sql/0015), its plan pinned and cached per connection, the call
 * prepared. Row locks order this against the API's cancel: exactly one of them sees the other's
 * write. Fenced by (id, lease_token, status = 'sending') and a lease still live in database time,
 * so no reclaim can take a started send before its heartbeat; send_started_at is not indexed (HOT
 * update).
 * Commits synchronously: it is the durable record that a send began, and it flushes the claim.
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
    /* prepared outbox_start_sends */
    select id, started, cancelled, expired
      from mailer.start_sends(${leases.map((l) => l.id)}::bigint[], ${leases.map((l) => l.token)}::uuid[])`.execute(
    db,
  )
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
