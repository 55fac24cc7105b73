// A worker alone keeps the rows its slow token request holds: giving them back would hand them to nobody but itself.
import { type Kysely, sql } from 'kysely'
import { untilAborted } from '../clock.ts'
import type { Database } from '../db/schema.ts'
import { timedTransaction } from '../db/timed-transaction.ts'
import type { Logger } from '../log.ts'
import { entryAliveNow } from './entry-alive-now.ts'
import { entryCanSend } from './entry-can-send.ts'
import { liveRegistryEntry } from './live-registry-entry.ts'
import type { TokenSlowKeep } from './sender.ts'
import type { SideStatements } from './side-statements.ts'

/**
 * Whether a live registry entry other than `workerId`'s can send (entry-can-send.ts: no credential
 * refusal noted, or a cached token still serving) and its worker is alive now (entry-alive-now.ts:
 * its beat not overdue, or its liveness lock held): a worker that could take rows given back due at
 * once. A killed worker's entry, live for two leases, took rows given back for nobody: they waited
 * and came back to the slow worker anyway, a history entry and a claim more each. The registry is a
 * handful of rows, read whole. `withinMs`: the statement is cancelled (57014) after it, in a
 * read-only transaction of its own (timedTransaction: the bound ends with it, the client goes back
 * to the pool unchanged); without it the pool's statement_timeout (30 s) bounds it.
 */
export async function anotherWorkerLive(
  db: Kysely<Database>,
  workerId: string,
  withinMs?: number,
): Promise<boolean> {
  const read = (q: Kysely<Database>) =>
    sql<{ other: boolean }>`
      select exists (select from mailer.workers w
                      where w.id <> ${workerId} and ${entryCanSend('w')}
                        and ${liveRegistryEntry('w')} and ${entryAliveNow('w')}) as other`.execute(
      q,
    )
  const { rows } =
    withinMs === undefined
      ? await read(db)
      : await timedTransaction(db, withinMs, read, { readOnly: true })
  return rows[0]?.other === true
}

/** What a delivery asks before it gives a row back for a slow token request, and where. */
export interface LoneTokenWait {
  /**
   * Before its send: true once the slow request has ended (or a stop began) when no other live
   * worker could take the row, or when that came before the registry's answer; the row then goes
   * on as it did before the give-back existed. False to give it back.
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
 *
 * Unanswered includes a read the database is slow to answer (a lock on the registry, a server
 * overloaded): in a send its wait ends with the send's deadline, the read itself cancelled then
 * (on `poolDb`; on `db`, whose statements run on their own, the pool's statement_timeout ends it).
 * It gives the row back because that is safe whoever else is alive: the send made no request
 * after Graph's 401 (a definite no), so the row goes back unsent and uncounted, due at once; a
 * peer with a token sends it, and a worker alone claims it again, a history entry and a claim
 * more, nothing lost or sent twice. Kept instead, it has no deadline left to wait for a token in
 * (a request past it could outlive the lease's margin and meet a reclaimer's send: sent twice,
 * graph-request.ts): it would go back token_timeout, due later, when a live peer could send it now.
 */
export function createLoneTokenWait(d: {
  /** The worker's statements (the statement route), where a read runs under the pool's statement_timeout. */
  db: Kysely<Database>
  /** Where a read in a send runs under a statement_timeout of its own (DrainerDeps.poolDb); absent: on `db`. */
  poolDb?: Kysely<Database>
  workerId: string
  log: Logger
  stopping: AbortSignal
  /**
   * The stop waits for each read: one whose askers stopped waiting (the stop, the token's end, a
   * send's deadline) runs on to its own bound, and a stop that resolved before it left its
   * connection out to a pool its caller closes next (whose end then waited for it).
   */
  besides: Pick<SideStatements, 'track'>
  /** While a token request is slow (no cached token serving): resolves when it ends; else null. */
  heldForToken: () => Promise<void> | null
}): LoneTokenWait {
  let asked: { ends: Promise<void>; alone: Promise<boolean> } | null = null
  const stopped = new Promise<void>((resolve) => {
    if (d.stopping.aborted) resolve()
    else d.stopping.addEventListener('abort', () => resolve(), { once: true })
  })
  /**
   * The slow request's end and whether the row is kept for it; null once it has ended. The read,
   * when a send asks it first, is cancelled after `withinMs` (what is left of that send's
   * deadline); one a row before its send asked first, by the pool's statement_timeout. Each
   * asker's wait for it ends by its own bound, whichever asked first.
   */
  function ask(withinMs?: number): { ends: Promise<void>; alone: Promise<boolean> } | null {
    const ends = d.heldForToken()
    if (ends === null) return null
    if (asked?.ends !== ends) {
      const read =
        withinMs !== undefined && d.poolDb
          ? anotherWorkerLive(d.poolDb, d.workerId, withinMs)
          : anotherWorkerLive(d.db, d.workerId)
      // Never rejects, as a statement tracked must not (side-statements.ts).
      const alone = d.besides.track(
        read.then(
          (other) => !other,
          (err: unknown) => {
            d.log.warn('could not read whether another worker could take the rows', { err })
            return false
          },
        ),
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
      // The request ended (or a stop began) before the read answered: the answer is moot, the
      // row goes on as above; the read ends in the background, under its statement_timeout, and
      // the stop waits for it (`besides`).
      const first = await Promise.race([slow.alone, slow.ends, stopped])
      if (first === false) return false
      await Promise.race([slow.ends, stopped])
      return true
    },
    async inSend(deadline, leftMs) {
      const slow = ask(leftMs)
      // Ended since: its token (or failure) is the send's at once.
      if (slow === null) return d.stopping
      // The deadline first: the read left to its own bound.
      const alone = await untilAborted(slow.alone, deadline)
      if (alone === true) return d.stopping
      // A stop that ended the wait for the answer releases the row as a stop does, unsent.
      return alone === 'aborted' && d.stopping.aborted ? d.stopping : null
    },
  }
}
