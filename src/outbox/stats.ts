// Counts by status, the age of the oldest due pending row (database time) and the NOTIFY queue's fill.
import { type Kysely, sql } from 'kysely'
import type { Database, OutboxStatus } from '../db/schema.ts'

export interface OutboxStats {
  counts: Record<OutboxStatus, number>
  /**
   * Seconds since the oldest *due* pending row became due (now() - send_at); rows scheduled in the
   * future are not lag. Null when nothing is waiting.
   */
  oldestPendingAgeSeconds: number | null
}

export interface LiveStats {
  pending: number
  sending: number
  oldestPendingAgeSeconds: number | null
  /** Fill level (0..1) of the server's NOTIFY queue; near 1, NOTIFYing commits start to fail. */
  notificationQueueUsage: number
}

export type SettledCounts = Pick<Record<OutboxStatus, number>, 'sent' | 'failed' | 'cancelled'>

/**
 * The rows still in play, read through the partial indexes that hold only them
 * (email_outbox_claim_idx, email_outbox_sending_idx): cost O(pending + sending), whatever the
 * number of finished rows the table keeps; and the NOTIFY queue's fill. One statement, cheap
 * enough for every metrics scrape.
 */
export async function liveStats(
  db: Kysely<Database>,
  scopeTenant: string | null,
): Promise<LiveStats> {
  const { rows } = await sql<{
    pending: string
    sending: string
    oldest: number | null
    usage: number
  }>`
    select
      (select count(*) from mailer.email_outbox
        where status = 'pending' and (${scopeTenant}::text is null or tenant = ${scopeTenant})) as pending,
      (select count(*) from mailer.email_outbox
        where status = 'sending' and (${scopeTenant}::text is null or tenant = ${scopeTenant})) as sending,
      (select extract(epoch from now() - min(send_at))::float8 from mailer.email_outbox
        where status = 'pending' and send_at <= now()
          and (${scopeTenant}::text is null or tenant = ${scopeTenant})) as oldest,
      pg_notification_queue_usage()::float8 as usage
  `.execute(db)
  const r = rows[0]
  return {
    pending: Number(r?.pending ?? 0),
    sending: Number(r?.sending ?? 0),
    oldestPendingAgeSeconds: r?.oldest == null ? null : Math.max(0, r.oldest),
    notificationQueueUsage: r?.usage ?? 0,
  }
}

/**
 * Finished rows (sent, failed, cancelled) by status: the table keeps them all, so this reads the
 * whole table (about 0.3 s per million rows when cached). Callers bound it with a statement_timeout.
 */
export async function settledCounts(
  db: Kysely<Database>,
  scopeTenant: string | null,
): Promise<SettledCounts> {
  const { rows } = await sql<{ status: OutboxStatus; n: string }>`
    select status, count(*) as n
      from mailer.email_outbox
     where status in ('sent', 'failed', 'cancelled')
       and (${scopeTenant}::text is null or tenant = ${scopeTenant})
     group by status
  `.execute(db)
  const counts: SettledCounts = { sent: 0, failed: 0, cancelled: 0 }
  for (const r of rows) counts[r.status as keyof SettledCounts] = Number(r.n)
  return counts
}

/** Every count, exact (a scan of the whole table: see settledCounts). */
export async function outboxStats(
  db: Kysely<Database>,
  scopeTenant: string | null,
): Promise<OutboxStats> {
  const live = await liveStats(db, scopeTenant)
  const settled = await settledCounts(db, scopeTenant)
  return {
    counts: { pending: live.pending, sending: live.sending, ...settled },
    oldestPendingAgeSeconds: live.oldestPendingAgeSeconds,
  }
}
