// One database's reading in the status command's --json shape (status-shape.ts), beside the health and reasons judge gave it.
import { timestampText } from '../db/timestamp-reading.ts'
import type { DatabaseReading } from './database-status.ts'
import type { DatabaseStatus } from './status-shape.ts'

/** The reading's fields as --json keys them; a section not read is null. */
export function statusFields(
  r: DatabaseReading,
  judged: Pick<DatabaseStatus, 'health' | 'reasons' | 'error'>,
): DatabaseStatus {
  const p = r.presence
  return {
    name: r.name,
    health: judged.health,
    reasons: judged.reasons,
    reachable: r.reachable,
    error: judged.error,
    readOnly: r.readOnly,
    schema: r.schema
      ? {
          verdict: r.schema.verdict,
          database: r.schema.database,
          binary: r.schema.binary,
          missing: r.schema.missing,
          newer: r.schema.newer,
        }
      : null,
    counts: r.stats ? { ...r.stats.counts } : null,
    oldestDuePendingSeconds: r.stats?.oldestPendingAgeSeconds ?? null,
    noneSentForSeconds: r.pauses ? r.pauses.noneSentForSeconds : null,
    heldBackPending: r.stats ? r.stats.heldBackPending : null,
    pastExpiryPending: r.stats ? r.stats.pastExpiryPending : null,
    claims:
      r.stats && p
        ? { rows: r.stats.counts.sending, workers: p.claimHolders, overdueLeases: p.overdueLeases }
        : null,
    workers: p ? { live: p.liveWorkers } : null,
    credentialRefused: r.stats?.credentialRefused ?? null,
    listener: p ? { sessions: p.listenerSessions } : null,
    pausedMailboxes: r.pauses
      ? {
          count: r.pauses.mailboxes,
          longestSeconds: r.pauses.longestSeconds,
          refused: r.pauses.refused,
          refusedPending: r.stats?.refusedMailboxPending ?? null,
        }
      : null,
    pacing: r.pacing
      ? {
          ratePerMinute: r.pacing.ratePerMinute,
          notedBy: r.pacing.notedBy,
          notedAt: timestampText(r.pacing.notedAt),
        }
      : null,
    failedLast24h: r.failures
      ? { total: r.failures.total, byCode: r.failures.byCode, complete: r.failures.complete }
      : null,
    pendingLastErrors: r.pendingErrors
      ? {
          total: r.pendingErrors.total,
          byCode: r.pendingErrors.byCode,
          complete: r.pendingErrors.complete,
        }
      : null,
  }
}
