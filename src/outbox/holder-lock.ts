// A worker's liveness lock: the session-level advisory lock its LISTEN session holds, whose release shows its send slots' holder dead (sql/0117).
import { type RawBuilder, sql } from 'kysely'
import { type Clock, untilAborted, waitAtMost } from '../clock.ts'
import type { Logger } from '../log.ts'

/**
 * The lock's key for the holder id `holder` (SQL text): 64 bits of its hash, so two live workers'
 * keys do not meet (one that did would only keep a dead holder's slots to their TTL).
 */
export function holderLockKey(holder: RawBuilder<unknown>): RawBuilder<string> {
  return sql<string>`hashtextextended(${holder}, 0)`
}

/**
 * How often a LISTEN session that found its holder's lock held by an earlier one tries it again:
 * well within HOLDER_GONE_MS (send-slots.ts), so that the slots the earlier session noted, seen
 * gone once it ends, are its worker's again before a take may take them.
 */
export const HOLDER_LOCK_RETRY_MS = 1_000

/** The note's server run, appended to the holder (SQL text): fixed for a session's life. */
const SERVER_RUN = `'@' || extract(epoch from pg_postmaster_start_time())::text
                    || '/' || coalesce(extract(epoch from pg_stat_get_bgwriter_stat_reset_time())::text, '')`

/**
 * What a take notes of its holder when the holder's lock is held (send_slots.holder_lock): the
 * holder and the server's run, so that neither an older binary's take (another holder) nor a
 * restart (which ended every session, live workers' too) reads as this holder's death. A run is
 * the postmaster's start and its shared statistics' reset: a crash restart (any backend killed -9,
 * the OOM killer's way) keeps the start but resets the statistics.
 *
 * A DBA's reset of the bgwriter's statistics (`pg_stat_reset_shared('bgwriter')`, or of all
 * shared ones) starts a new run too: every LISTEN session's note, read once when it took its lock,
 * then differs from what the takes compare it with until that session ends (days, for a healthy
 * one), so a worker killed meanwhile has its slots wait out their TTL, as before 0117: the safe
 * way, never a live holder's slots taken. No value a worker's role can read changes at a crash
 * restart and at nothing a DBA does: the checkpointer's backend_start (new at a crash restart) is
 * hidden from other roles in pg_stat_activity, which shows them a pid but not whose;
 * pg_conf_load_time() changes at every reload, the checkpoint's position at every checkpoint; and
 * each statistics kind's reset time can be reset (holder-lock.test.ts pins this behaviour).
 */
export function holderLockNote(holder: RawBuilder<unknown>): RawBuilder<string> {
  return sql<string>`${holder} || ${sql.raw(SERVER_RUN)}`
}

/**
 * The advisory locks (bigint form) held on the server now, by key and holding backend. pg_locks
 * shows every role's locks to any role, unlike pg_stat_activity. Every database's: a holder's key
 * held in another (the same worker's session there) only keeps its slots to their TTL.
 */
export function heldHolderLocks(): RawBuilder<{ key: string; pid: number }> {
  return sql<{ key: string; pid: number }>`
    select (l.classid::int8 << 32) | l.objid::int8 as key, l.pid
      from pg_locks l
     where l.locktype = 'advisory' and l.objsubid = 1 and l.granted`
}

/** The worker's LISTEN session, as the lock's statements use it. */
type LockSession = {
  query(text: string, values: unknown[]): Promise<{ rows: { note?: string | null }[] }>
}

/**
 * Takes `holder`'s lock on `session`, the worker's LISTEN session (a direct one: a pooler's would
 * hold it on a server session that outlives the worker, or end it under a live one). When held,
 * the note its slot takes write while this session lasts (holderLockNote, read here once: fixed
 * for the session's life): the session holds the lock until it ends, and the server releases it
 * then, however the process died. Null when another session holds it (a previous LISTEN session
 * the server has not ended yet: this session's takes then note nothing, for its lock's end would
 * not be this one's), and when the statement fails or goes unanswered within `timeoutMs` (the
 * session's checks find a dead one): the slots taken meanwhile then wait out their TTL, unless a
 * later take of the lock (a retry, the next session) notes them, as it notes every busy slot its
 * holder holds.
 *
 * `held` is given the note the moment the lock is held, before the slots taken meanwhile are noted
 * again (noteTakenMeanwhile): the worker's takes answered from then on note their own slots.
 */
export async function takeHolderLock(
  session: LockSession,
  holder: string,
  /** quiet: a retry, which says nothing of a lock still held elsewhere or a failure. */
  o: {
    db: string
    clock: Clock
    log: Logger
    timeoutMs: number
    quiet?: boolean
    held?: (note: string) => void
    /** The worker's stop: the take is waited for no longer, and its answer is not held (null). */
    stopping?: AbortSignal
  },
): Promise<string | null> {
  // Held again (a later session of a live worker's): the takes' sightings of its lock gone are
  // cleared with it, so they count from its next loss, not this one (sql/0129). Held: the slots
  // the worker holds now get this session's note, as its takes from now on write it; those taken
  // while no session of its held the lock (its first pickup at its start, before this session
  // connected; a wait for an earlier session's end) noted none, and would have waited out their
  // TTL once this session ends, however long that is after (fault 12's cut slot holder). Only its
  // own busy slots: a free one gets its next taker's note.
  const take = session
    .query(
      `with l as (select pg_try_advisory_lock(hashtextextended($1::text, 0)) as locked,
                         $1::text || ${SERVER_RUN} as note),
            noted as (update mailer.send_slots s set holder_lock = l.note, holder_lock_gone_at = null
                        from l
                       where l.locked and s.holder = $1::text
                         and (s.holder_lock_gone_at is not null
                              or (s.expires_at > now() and s.holder_lock is distinct from l.note)))
       select case when locked then note end as note from l`,
      [holder],
    )
    .then(({ rows }) => rows[0]?.note ?? null)
  let note: string | null
  try {
    const taken = await untilAborted(waitAtMost(o.clock, take, o.timeoutMs), o.stopping)
    // A stop meanwhile: the caller ends the session, and the lock with it (never told as held).
    if (taken === 'aborted' || o.stopping?.aborted) return null
    note = taken
  } catch (err) {
    if (o.stopping?.aborted) return null
    if (!o.quiet)
      o.log.warn('could not take the liveness lock; send slots wait out their TTL', {
        db: o.db,
        err,
      })
    return null
  }
  if (note) {
    o.held?.(note)
    await waitAtMost(o.clock, noteTakenMeanwhile(session, holder, note), o.timeoutMs).catch(
      () => {},
    )
    return note
  }
  if (!o.quiet)
    o.log.info('liveness lock held by an earlier session; send slots wait out their TTL', {
      db: o.db,
    })
  return null
}

/**
 * Notes the busy slots `holder` holds that its lock's statement did not: a take that committed
 * after that statement read the slots, and answered before the worker had the note (`held`), wrote
 * none and found none to note again (slot-taker.ts). Any take answered before `held` committed
 * before this statement reads them; any answered after notes its own. A failure leaves such a slot
 * to its TTL, as before the lock was held.
 */
export async function noteTakenMeanwhile(session: LockSession, holder: string, note: string) {
  await session.query(
    `update mailer.send_slots set holder_lock = $2::text
      where holder = $1::text and expires_at > now() and holder_lock is distinct from $2::text`,
    [holder, note],
  )
}
