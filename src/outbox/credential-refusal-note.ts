// A worker's registry entry notes a change of its credential's refusal when the worker learns it (sql/0198): one statement per change, not the next beat's wait.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import type { Logger } from '../log.ts'
import { credentialRefusalColumns } from './registry-beat.ts'
import type { SideStatements } from './side-statements.ts'
import type { WorkerIdentity } from './worker-identity.ts'

/**
 * Writes into `worker`'s registry entry (primary key) the credential's refusal as it stands now, as
 * a beat does (registryBeat: the code, a since kept while a refusal stands, until when the cached
 * token serves (sql/0202), all cleared without one), and when: last_heartbeat_at, never moved back. A beat read before this and committed after
 * it keeps what this wrote (registryBeat's `newer`). An entry not there (the worker not registered
 * yet, or deregistered by its stop) is not written: its first beat notes the refusal, and a stopped
 * worker's entry stays gone. Returns whether the entry was written.
 */
export async function noteCredentialRefusal(
  db: Kysely<Database>,
  worker: WorkerIdentity,
): Promise<boolean> {
  const { code, since, servesUntil } = credentialRefusalColumns(worker)
  const r = await sql`update mailer.workers w
       set last_heartbeat_at = greatest(w.last_heartbeat_at, now()),
           credential_refused_code = ${code}::text,
           credential_refused_since = case when ${code}::text is not null
             then coalesce(w.credential_refused_since, ${since}) end,
           credential_serves_until = ${servesUntil}
     where w.id = ${worker.id}`.execute(db)
  return Number(r.numAffectedRows ?? 0) > 0
}

/** Whether `worker`'s credential, refused, has a cached token serving its sends (sql/0202). */
function serving(worker: WorkerIdentity): boolean {
  return (worker.credentialRefusal?.servesForMs ?? 0) > 0
}

/**
 * What a worker does each time its credential's refusal changes (transport: Entra refuses it, with
 * another code, or no longer; or Graph's 401 drops the cached token that served it while refused,
 * sql/0202): its registry entry notes it at once, so status and /v1/stats (and the other workers)
 * know it within the statement's time, where the next beat came up to a lease length later (an
 * idle worker beats once per LEASE_SECONDS). One note at a time: a change during one is written by
 * another after it, read then. Beside the claims (the stop waits for it); none once stopping. A
 * failure is logged: the next beat writes the same, and a refusal it so writes is told (`noted`)
 * as the note's would have been.
 * `beatCommitted`: a beat (heartbeat, reclaim) writes the refusal it was built with (beatNow), and
 * one built before a change may reach the database after the change's note committed (waiting for
 * a connection): registryBeat's `newer` keeps the note only for a beat whose transaction began
 * first, so this one wrote the older state back until the next beat, up to a lease length. Told of
 * each committed beat, it notes again when what the beat wrote differs from the state now (the
 * code, or a token noted serving that none does now): no statement while the refusal stands
 * unchanged (the steady state), one more after such a beat.
 * `clearing`: while a note that clears a refusal (a token came) is to come or under way, a promise
 * settled once it is over (written, failed, or not written as the worker stops); null otherwise.
 * Until then the entry may still note the refusal, and another worker refused alone reads it as
 * every live worker refused (paced-rows-blocked.ts): a pacing turn this worker reserves meanwhile
 * would be given up, its row made due and named by that worker's refusal.
 */
export function createCredentialRefusalNote(d: {
  db: Kysely<Database>
  worker: WorkerIdentity
  log: Logger
  besides: SideStatements
  stopping: AbortSignal
  /** A note that wrote a refusal (not its end) into the entry committed, or a beat in its stead. */
  noted?: () => void
}): {
  changed: () => void
  beatCommitted: (beat: WorkerIdentity) => void
  clearing: () => Promise<void> | null
} {
  let noting: 'idle' | 'running' | 'again' = 'idle'
  // A refusal no note wrote (the statement failed, or the entry was not there yet): the next beat
  // writes it, and tells `noted` then, as the note would have.
  let unwritten = false
  let clearing: PromiseWithResolvers<void> | null = null
  function cleared() {
    clearing?.resolve()
    clearing = null
  }
  function note() {
    if (d.stopping.aborted) return cleared()
    if (credentialRefusalColumns(d.worker).code === null) clearing ??= Promise.withResolvers()
    if (noting !== 'idle') {
      noting = 'again'
      return
    }
    noting = 'running'
    // What the statement writes, read as it is built (the worker's getter, once).
    const refused = credentialRefusalColumns(d.worker).code !== null
    void d.besides.track(
      noteCredentialRefusal(d.db, d.worker)
        .then((written) => {
          unwritten = refused && !written
          if (written && refused) d.noted?.()
        })
        .catch((err: unknown) => {
          unwritten = refused
          d.log.warn('could not note the Graph credential’s refusal in the worker registry', {
            err,
          })
        })
        .finally(() => {
          const again = noting === 'again'
          noting = 'idle'
          // The note to come reads the state then, and settles what is still owed.
          if (again) note()
          else cleared()
        }),
    )
  }
  return {
    changed: note,
    beatCommitted(beat) {
      const wrote = credentialRefusalColumns(beat).code
      if (wrote !== credentialRefusalColumns(d.worker).code) note()
      // The same refusal, but the beat noted a cached token serving that Graph's 401 has dropped
      // since (graph-transport.ts): another worker would read this one as able to send until the
      // next beat. A token whose use ended by itself during the beat's flight is noted once more,
      // needlessly (its noted end passes anyway): as rare, and only while refused.
      else if (serving(beat) && !serving(d.worker)) note()
      else if (unwritten && wrote !== null && noting === 'idle' && !d.stopping.aborted) {
        unwritten = false
        d.noted?.()
      }
    },
    clearing: () => clearing?.promise ?? null,
  }
}
