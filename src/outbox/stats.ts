// Counts by status and the age of the oldest due pending row, in database time.
import { type Kysely, sql } from 'kysely'
import { type Database, OUTBOX_STATUSES, type OutboxStatus } from '../db/schema.ts'

export interface OutboxStats {
  counts: Record<OutboxStatus, number>
  /**
   * Seconds since the oldest *due* pending row became due (now() - send_at); rows scheduled in the
   * future are not lag. Null when nothing is waiting.
   */
  oldestPendingAgeSeconds: number | null
}

/** One scan of the table; callers bound it with a statement_timeout. */
export async function outboxStats(
  db: Kysely<Database>,
  scopeTenant: string | null,
): Promise<OutboxStats> {
  const result = await sql<{ status: OutboxStatus | null; n: string; oldest: number | null }>`
    select status, count(*) as n,
           extract(epoch from now() - min(send_at) filter (where status = 'pending' and send_at <= now()))::float8 as oldest
      from mailer.email_outbox
     where ${scopeTenant}::text is null or tenant = ${scopeTenant}
     group by status
  `.execute(db)
  const counts = Object.fromEntries(OUTBOX_STATUSES.map((s) => [s, 0])) as Record<
    OutboxStatus,
    number
  >
  let oldest: number | null = null
  for (const r of result.rows) {
    if (r.status) counts[r.status] = Number(r.n)
    if (r.oldest !== null) oldest = Math.max(0, r.oldest)
  }
  return { counts, oldestPendingAgeSeconds: oldest }
}

/** Fill level (0..1) of the server's NOTIFY queue; near 1, NOTIFYing commits start to fail. */
export async function notificationQueueUsage(db: Kysely<Database>): Promise<number> {
  const r = await sql<{
    usage: number
  }>`select pg_notification_queue_usage()::float8 as usage`.execute(db)
  return r.rows[0]?.usage ?? 0
}
