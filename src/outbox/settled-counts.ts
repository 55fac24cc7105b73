// The finished rows' counts by status (sent, failed, cancelled): read from indexes only, or one tenant's through its opt-in index.
import { type Kysely, sql } from 'kysely'
import type { Database, OutboxStatus } from '../db/schema.ts'

export type SettledCounts = Pick<Record<OutboxStatus, number>, 'sent' | 'failed' | 'cancelled'>

/**
 * Finished rows (sent, failed, cancelled) by status, read from indexes only: sent rows are all rows
 * (email_outbox_pkey) less those in play (email_outbox_claim_idx, email_outbox_sending_idx) and the
 * failed and cancelled ones (email_outbox_failed_cancelled_idx, 0009), all in one snapshot, so the
 * heap the table keeps every finished row in is not read (index-only scans; a page changed since the
 * last vacuum is checked in the heap). About 80 ms and 22 MB per million rows against a second and
 * 2.6 GB for 1 KB bodies (bench/kept-reads.ts). Confined to a tenant: tenantSettledCounts.
 * Callers bound it with a statement_timeout.
 */
export async function settledCounts(
  db: Kysely<Database>,
  scopeTenant: string | null,
): Promise<SettledCounts> {
  if (scopeTenant !== null) return tenantSettledCounts(db, scopeTenant)
  // Invariant: status is one of the five (email_outbox_status_check), so the subtraction is exact.
  const { rows } = await sql<{ total: string; live: string; failed: string; cancelled: string }>`
    select
      (select count(*) from mailer.email_outbox
        where ${scopeTenant}::text is null or tenant = ${scopeTenant}) as total,
      (select count(*) from mailer.email_outbox
        where status = 'pending' and (${scopeTenant}::text is null or tenant = ${scopeTenant}))
      + (select count(*) from mailer.email_outbox
          where status = 'sending' and (${scopeTenant}::text is null or tenant = ${scopeTenant})) as live,
      (select count(*) from mailer.email_outbox
        where status = 'failed' and (${scopeTenant}::text is null or tenant = ${scopeTenant})) as failed,
      (select count(*) from mailer.email_outbox
        where status = 'cancelled' and (${scopeTenant}::text is null or tenant = ${scopeTenant})) as cancelled
  `.execute(db)
  const r = rows[0]
  const failed = Number(r?.failed ?? 0)
  const cancelled = Number(r?.cancelled ?? 0)
  const sent = Number(r?.total ?? 0) - Number(r?.live ?? 0) - failed - cancelled
  return { sent, failed, cancelled }
}

/**
 * One tenant's finished rows by status, in one statement whose predicate is that of the opt-in index
 * of finished rows by tenant (email_outbox_finished_tenant_idx, deploy/README.md step 7, not a
 * migration: it costs every settlement WAL): where a DBA added it, an index-only scan of that
 * tenant's entries; without it, a read of the whole heap (tenant is in no other index).
 */
export async function tenantSettledCounts(
  db: Kysely<Database>,
  tenant: string,
): Promise<SettledCounts> {
  const { rows } = await sql<{ sent: string; failed: string; cancelled: string }>`
    select count(*) filter (where status = 'sent') as sent,
           count(*) filter (where status = 'failed') as failed,
           count(*) filter (where status = 'cancelled') as cancelled
      from mailer.email_outbox
     where tenant = ${tenant} and status in ('sent', 'failed', 'cancelled')
  `.execute(db)
  const r = rows[0]
  return {
    sent: Number(r?.sent ?? 0),
    failed: Number(r?.failed ?? 0),
    cancelled: Number(r?.cancelled ?? 0),
  }
}
