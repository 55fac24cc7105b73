// Wakes the other workers for rows this one gave back due at once (a slow token request): one notification per burst.
import type { Kysely } from 'kysely'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import type { SideStatements } from './side-statements.ts'
import { wakeWorkers } from './wake-workers.ts'

/**
 * Returns what a delivery calls once a row it gave back for another worker is settled: a settlement
 * notifies nobody, and without it a peer with a token found the rows only at its backstop poll.
 * Calls while a notification is under way are answered by one more after it (the rows they settled
 * may have committed after it was sent), not one each: a batch's rows give back together.
 */
export function createPeerWake(d: {
  db: Kysely<Database>
  log: Logger
  besides: SideStatements
  stopping: AbortSignal
}): () => void {
  let running = false
  let again = false
  const run = (): Promise<void> =>
    wakeWorkers(d.db)
      .catch((err: unknown) => d.log.warn('could not wake the other workers', { err }))
      .then(() => {
        if (!again || d.stopping.aborted) {
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
