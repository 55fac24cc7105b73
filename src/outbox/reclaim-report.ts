// What one reclaim's answer tells: the engine events and the log lines of the rows it ended, put back or swept (ids only, never an address).

import type { Logger } from '../log.ts'
import type { EngineEventHandler } from './events.ts'
import type { ReclaimResult } from './reclaim.ts'
import type { BeatResult } from './registry-beat.ts'

interface ReclaimReportDeps {
  dbName: string
  log: Logger
  onEvent?: EngineEventHandler
  onBeat?: (beat: BeatResult) => void
  /** Reclaimed rows are pending again: claim them. */
  wake: () => void
  /** Reclaimed rows are due at once for any worker: the others are woken too (peer-wake.ts). */
  wakePeers?: () => void
}

/**
 * Reports `r` as a settlement would its rows: a swept or reclaimed row that ended is counted
 * (outbox_sends_total, which the "sends failing" alert watches) and, failed, has its one
 * "message failed" line; the rows put back wake the claim, and the other workers.
 */
export function reportReclaim(d: ReclaimReportDeps, r: ReclaimResult): void {
  if (r.beat) d.onBeat?.(r.beat)
  // A count, not the mailboxes: logs carry no addresses.
  if (r.staleProbes)
    d.log.info('owed probe cleared: no live worker sends from its mailbox', {
      count: r.staleProbes,
    })
  // Counted and logged as a claim that finds a row expired does (outbox_sends_total{outcome=
  // "expired"}; one line per row, as for any failure), or, with a cancel recorded, as the
  // settlement that finds the cancel (one line, at debug).
  for (const s of r.swept) {
    const outcome = s.status === 'cancelled' ? 'cancelled' : 'expired'
    d.onEvent?.({ type: 'settled', db: d.dbName, id: s.id, outcome, code: outcome })
    d.log[s.status === 'cancelled' ? 'debug' : 'warn'](
      s.status === 'cancelled' ? 'settled' : 'message failed',
      {
        db: d.dbName,
        outboxId: s.id,
        tenant: s.tenant,
        attempt: s.attempt,
        correlationId: s.correlationId,
        outcome,
        status: s.status,
        code: outcome,
        claimed: false,
      },
    )
  }
  if (r.rows.length === 0) return
  d.log.warn('reclaimed expired leases', { count: r.rows.length, ids: r.rows.map((x) => x.id) })
  d.onEvent?.({ type: 'reclaimed', db: d.dbName, count: r.rows.length })
  // A row out of attempts, or cancelled, ends here, not in a settlement: it must be counted all
  // the same (outbox_sends_total{outcome="failed"} is what the "sends failing" alert watches).
  for (const x of r.rows) {
    if (x.status === 'failed') {
      // A lookup past its expiresAt that kept losing its worker ends expired, as the sweep's.
      const outcome = x.expired ? 'expired' : 'failed'
      d.onEvent?.({
        type: 'settled',
        db: d.dbName,
        id: x.id,
        outcome,
        code: x.expired ? 'expired' : 'lease_expired',
      })
    } else if (x.status === 'cancelled') {
      d.onEvent?.({ type: 'settled', db: d.dbName, id: x.id, outcome: 'cancelled' })
    }
  }
  // One line per failed row, as a settlement and the sweep log (ids only): the aggregate line
  // above names no row's end, and a search for the row's id would find nothing.
  for (const f of r.failed)
    d.log.warn('message failed', {
      db: d.dbName,
      outboxId: f.id,
      tenant: f.tenant,
      attempt: f.attempt,
      correlationId: f.correlationId,
      outcome: f.code === 'expired' ? 'expired' : 'failed',
      status: 'failed',
      code: f.code,
    })
  d.wake()
  // Put back pending, due at once (their send_at kept), for any worker: this one may not claim
  // them now (its token request slow, its places full), and nothing else tells the others (a
  // reclaim sends no notification): they took them at their backstop poll. The statement has
  // committed; reclaims that put rows back are rare (a worker died), idle ones put none back.
  if (r.rows.some((x) => x.status === 'pending')) d.wakePeers?.()
}
