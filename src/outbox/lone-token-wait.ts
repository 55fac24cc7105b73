// A worker alone keeps the rows its slow token request holds: giving them back would hand them to nobody but itself.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import { entryAliveNow } from './entry-alive-now.ts'
import { entryCanSend } from './entry-can-send.ts'
import { liveRegistryEntry } from './live-registry-entry.ts'
import type { TokenSlowKeep } from './sender.ts'

/**
 * Whether a live registry entry other than `workerId`'s can send (entry-can-send.ts: no credential
 * refusal noted, or a cached token still serving) and its worker is alive now (entry-alive-now.ts:
 * its beat not overdue, or its liveness lock held): a worker that could take rows given back due at
 * once. A killed worker's entry, live for two leases, took rows given back for nobody: they waited
 * and came back to the slow worker anyway, a history entry and a claim more each. The registry is a
 * handful of rows, read whole.
 */
export async function anotherWorkerLive(db: Kysely<Database>, workerId: string): Promise<boolean> {
  const { rows } = await sql<{ other: boolean }>`
    select exists (select from mailer.workers w
                    where w.id <> ${workerId} and ${entryCanSend('w')}
                      and ${liveRegistryEntry('w')} and ${entryAliveNow('w')}) as other`.execute(db)
  return rows[0]?.other === true
}

/** What a delivery asks before it gives a row back for a slow token request, and where. */
export interface LoneTokenWait {
  /**
   * Before its send: true once the slow request has ended (or a stop began) when no other live
   * worker could take the row, which then goes on as it did before the give-back existed; false
   * to give it back.
   */
  beforeSend: () => Promise<boolean>
  /** In its send, the token Graph refused (401) dropped: see TokenSlowKeep (sender.ts). */
  inSend: TokenSlowKeep
}

/**
 * A slow token request (Graph's token_slow: due at once, for a worker with a token) gives the rows
 * waiting for it back unless no other live worker could take them: a worker alone (the common
 * deployment) otherwise gave each row back to itself, a history entry and a claim more each, its
 * send no sooner. One registry read per slow request, shared by its rows before and in their
 * sends; an unanswered read gives them back.
 */
export function createLoneTokenWait(d: {
  db: Kysely<Database>
  workerId: string
  log: Logger
  stopping: AbortSignal
  /** While a token request is slow (no cached token serving): resolves when it ends; else null. */
  heldForToken: () => Promise<void> | null
}): LoneTokenWait {
  let asked: { ends: Promise<void>; alone: Promise<boolean> } | null = null
  const stopped = new Promise<void>((resolve) => {
    if (d.stopping.aborted) resolve()
    else d.stopping.addEventListener('abort', () => resolve(), { once: true })
  })
  /** The slow request's end and whether the row is kept for it; null once it has ended. */
  function ask(): { ends: Promise<void>; alone: Promise<boolean> } | null {
    const ends = d.heldForToken()
    if (ends === null) return null
    if (asked?.ends !== ends) {
      const alone = anotherWorkerLive(d.db, d.workerId).then(
        (other) => !other,
        (err: unknown) => {
          d.log.warn('could not read whether another worker could take the rows', { err })
          return false
        },
      )
      asked = { ends, alone }
    }
    return asked
  }
  return {
    async beforeSend() {
      const slow = ask()
      // Ended since the row was found waiting: it goes on, the gate's next look tells a failure.
      if (slow === null) return true
      if (!(await slow.alone)) return false
      await Promise.race([slow.ends, stopped])
      return true
    },
    async inSend() {
      const slow = ask()
      // Ended since: its token (or failure) is the send's at once.
      if (slow === null || (await slow.alone)) return d.stopping
      return null
    },
  }
}
