// Wakes the other workers for rows left due at once for them (a slow token's or a stop's give-back, a reclaim): one notification per burst.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import type { SettledRow, Settlement } from './settle-item.ts'
import type { SideStatements } from './side-statements.ts'
import { wakeWorkers } from './wake-workers.ts'

/**
 * Whether settlement `s`, recorded as `row`, left the row pending and due at once for another
 * worker: a retry due now (Graph: this worker's token request is slow, its rows given back for a
 * worker with a token; it claims nothing until the request ends), or any row a stop gives back
 * (released: this worker claims no more). Read where every settlement commits (lease-outcome.ts),
 * so no delivery path has to remember the wake. Not for a row this worker claims again itself (a
 * release while it runs wakes its own loop; its stop wakes the others for one that loop had not
 * claimed again: own-releases.ts), nor one the settlement ended (a cancel that won, the
 * attempts spent): a healthy send's settlement asks no statement of it.
 */
export function dueAtOnceForOthers(s: Settlement, row: SettledRow, stopping: boolean): boolean {
  if (row.status !== 'pending') return false
  if (s.kind === 'released') return stopping
  return s.kind === 'retry' && (row.dueMs ?? s.delayMs) === 0
}

/**
 * Returns what the settlement of a row given back for another worker calls once it has committed
 * (dueAtOnceForOthers), and a reclaim that put rows back pending (reclaim-report.ts): neither
 * notifies anybody, and without it a peer with a token found the rows only at its backstop poll
 * (POLL_INTERVAL_SECONDS), as did the rows a stop gave back. Calls while a notification is under
 * way are answered by one more after it (the rows they settled may have committed after it was
 * sent), not one each: a batch's rows give back together. So during a stop too, whose give-backs
 * may commit in several batches (the rows waiting for a slot at once, a lookup the hard abort cut
 * off later): the stop waits for it (`besides`).
 */
export function createPeerWake(d: {
  db: Kysely<Database>
  log: Logger
  besides: SideStatements
}): () => void {
  let running = false
  let again = false
  const run = (): Promise<void> =>
    wakeWorkers(d.db)
      .catch((err: unknown) => d.log.warn('could not wake the other workers', { err }))
      .then(() => {
        if (!again) {
          running = false
          return
        }
        again = false
        return run()
      })
  return () => {
    if (running) {
      again = true
      return
    }
    running = true
    void d.besides.track(run())
  }
}
