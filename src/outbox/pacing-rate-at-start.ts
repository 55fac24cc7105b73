// A Postgres send gate's start: its MAILBOX_RATE_PER_MINUTE noted as every worker's, and what that replaced or brought due said in the log.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.ts'
import { timestampText } from '../db/timestamp-reading.ts'
import type { Logger } from '../log.ts'
import { notePacingRate } from './pacing-rate.ts'

/** Notes this worker's pacing interval (the newest worker's holds: pacing-rate.ts) and logs what changed. */
export async function noteRateAtStart(
  db: Kysely<Database>,
  log: Logger,
  o: { intervalMs: number; ratePerMinute: number; holder: string },
): Promise<void> {
  const { due, replaced } = await notePacingRate(db, {
    intervalMs: o.intervalMs,
    notedBy: o.holder,
  })
  // Silent, a machine of an older release restarted after a deploy changed the rate set the
  // old one back for every worker (the newest worker's rate holds: pacing-rate.ts).
  if (replaced)
    log.warn(
      "this worker's MAILBOX_RATE_PER_MINUTE replaces the rate every worker paced by: the newest worker's holds",
      {
        ratePerMinute: o.ratePerMinute,
        replacedRatePerMinute:
          replaced.intervalMs > 0 ? Math.round(60_000 / replaced.intervalMs) : 0,
        replacedNotedBy: replaced.notedBy,
        replacedNotedAt: timestampText(replaced.notedAt),
      },
    )
  if (due > 0)
    log.info('paced rows due again to take turns at this MAILBOX_RATE_PER_MINUTE', { rows: due })
}
