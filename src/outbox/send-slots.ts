// Statements behind the shared concurrency limit: provider send slots taken, renewed and freed, in database time.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'
import { heldHolderLocks, holderLockKey, holderLockNote } from './holder-lock.ts'

/**
 * How long a holder's liveness lock must stay gone, from the first take that found it so, before
 * its busy slots are taken: a live worker whose LISTEN session ended reconnects and takes it again
 * well within it (its first reconnect within 0.5 s, two failed ones within 3.5 s).
 */
export const HOLDER_GONE_MS = 5_000

interface SlotTake {
  want: number
  max: number
  holder: string
  ttlMs: number
  /**
   * The note of `holder`'s liveness lock, read by its LISTEN session when it took the lock
   * (takeHolderLock); absent or null: not held, and the slots taken wait out their TTL if it dies
   * before a session of its takes the lock (which notes the slots its holder holds then).
   * A take after the session ended, before the listener learned it, still writes it: that slot
   * is then as any of a worker whose session ended (seen gone, kept if the next session locks).
   */
  lockNote?: string | null
}

/**
 * Takes up to `want` free slots of 1..max (a free slot's lease has expired), each with a fresh
 * token; none when all are busy. Slot rows are permanent and only updated (HOT: no indexed column
 * changes), so a busy send path leaves no dead index entries behind for the next taker to wade
 * through, as inserting and deleting a row per send did. SKIP LOCKED keeps racing takers on
 * different slots; a slot another taker committed in between is rechecked on its latest version
 * and passed over. With none free, a dead holder's slot is taken too (holder-lock.ts).
 */
export async function takeSlots(
  db: Kysely<Database>,
  p: SlotTake,
): Promise<{ slot: number; token: string }[]> {
  const take = () => slotTakeStatement(p).execute(db)
  const takeAll = async () => {
    const { rows } = await take()
    const slots = rows.flatMap((r) =>
      r.slot !== null && r.token !== null ? [{ slot: r.slot, token: r.token }] : [],
    )
    return { slots, missing: rows[0]?.missing === true }
  }
  const first = await takeAll()
  // All busy; or rows do not exist yet (first use, a raised limit): then create them and try again.
  if (!first.missing || (await ensureSlots(db, p.max)) === 0) return first.slots
  return (await takeAll()).slots
}

/**
 * takeSlots' statement, unexecuted (a pickup's prime sends its text: pickup-primes.ts). The take
 * writes `lockNote`, which its LISTEN session read when it took the lock (sql/0117). With no slot
 * free, a busy slot whose note says its holder's lock was held at its take on this server run, and
 * which nobody holds now, is only noted as seen gone (sql/0129); a later take, the lock still gone
 * HOLDER_GONE_MS after, takes it: the session that held it ended and no later one of its worker's
 * took the lock again (which clears the sightings: holder-lock.ts), its process dead. A take that
 * finds a seen-gone holder's lock held again clears the sighting too, so a sighting stands only
 * while every take since has found the lock gone. The advisory locks (pg_locks, which takes every
 * lock-manager partition's lock) are read only then, once.
 */
export function slotTakeStatement(p: SlotTake) {
  // A busy slot whose holder's lock is read: no slot free, its note this run's.
  const noted = sql`s.holder_lock = ${holderLockNote(sql`s.holder`)}
                    and not exists (select 1 from mailer.send_slots f
                                     where f.slot <= ${p.max}::int and f.expires_at <= now())`
  const lockGone = sql`${holderLockKey(sql`s.holder`)} not in (select key from locks)`
  return sql<{ slot: number | null; token: string | null; missing: boolean }>`
      with locks as materialized (${heldHolderLocks()}),
      taken as (
        update mailer.send_slots t
           set holder = ${p.holder}, token = gen_random_uuid(),
               expires_at = now() + make_interval(secs => ${p.ttlMs / 1000}),
               holder_lock = ${p.lockNote ?? null}::text,
               holder_lock_gone_at = null
         where t.slot in (select s.slot from mailer.send_slots s
                           where s.slot <= ${p.max}::int
                             and (s.expires_at <= now()
                                  or (s.holder_lock_gone_at <= now() - make_interval(secs => ${HOLDER_GONE_MS / 1000})
                                      and ${noted} and ${lockGone}))
                           order by random() limit ${p.want}::int
                           for update skip locked)
        returning t.slot, t.token::text as token
      ),
      -- A lock gone is noted as seen gone; one held again clears a sighting left (a take's read of
      -- the locks before the holder's next session took it, its update after that cleared them; an
      -- older binary's session, which clears none). Disjoint from taken's rows (seen gone, lock
      -- gone), so no row is updated twice.
      seen_gone as (
        update mailer.send_slots g
           set holder_lock_gone_at = case when g.holder_lock_gone_at is null then now() end
         where g.slot in (select s.slot from mailer.send_slots s
                           where s.slot <= ${p.max}::int and s.expires_at > now() and ${noted}
                             and (s.holder_lock_gone_at is null) = (${lockGone})
                           for update skip locked)
      )
      select slot, token, false as missing from taken
      union all
      -- Rows are counted only when nothing was taken.
      select null, null, (select count(*) from mailer.send_slots where slot <= ${p.max}::int) < ${p.max}::int
       where not exists (select 1 from taken)`
}

/**
 * Creates the slot rows 1..max that do not exist yet, free; returns how many it created. Runs only
 * when a take found rows missing: a primary-key probe per slot, no insert attempt for existing ones.
 */
export async function ensureSlots(db: Kysely<Database>, max: number): Promise<number> {
  const { rows } = await sql<{ slot: number }>`
    insert into mailer.send_slots (slot, holder, token, expires_at)
    select s, '', gen_random_uuid(), '-infinity' from generate_series(1, ${max}::int) s
     where not exists (select 1 from mailer.send_slots t where t.slot = s)
    on conflict (slot) do nothing
    returning slot`.execute(db)
  return rows.length
}

/** Frees slots, each fenced by its token (an expired and re-taken slot is not freed), in one statement. */
export async function freeSlots(
  db: Kysely<Database>,
  held: readonly { slot: number; token: string }[],
): Promise<void> {
  if (held.length === 0) return
  await sql`update mailer.send_slots s set expires_at = '-infinity'
              from unnest(${held.map((h) => h.slot)}::int[], ${held.map((h) => h.token)}::uuid[]) as f(slot, token)
             where s.slot = f.slot and s.token = f.token`.execute(db)
}

/**
 * Frees the live slots `holder` holds apart from `known` (tokens), in one statement: a take that
 * committed and then lost its answer with its connection took slots nobody will use or free.
 */
export async function freeUnknownSlots(
  db: Kysely<Database>,
  p: { holder: string; known: readonly string[] },
): Promise<void> {
  await sql`update mailer.send_slots set expires_at = '-infinity'
             where holder = ${p.holder} and expires_at > now()
               and token <> all(${p.known}::uuid[])`.execute(db)
}

/**
 * Writes `note` on slots a take got, each fenced by its token and still busy, where it is not
 * theirs yet: the take wrote none (or another), its worker's LISTEN session having taken the lock
 * while it ran, whose statement noted the slots its worker held before this take committed.
 */
export async function noteSlots(
  db: Kysely<Database>,
  held: readonly { slot: number; token: string }[],
  note: string,
): Promise<void> {
  await sql`update mailer.send_slots s set holder_lock = ${note}
              from unnest(${held.map((h) => h.slot)}::int[], ${held.map((h) => h.token)}::uuid[]) as f(slot, token)
             where s.slot = f.slot and s.token = f.token and s.expires_at > now()
               and s.holder_lock is distinct from ${note}::text`.execute(db)
}

/**
 * Extends slots still in use by another TTL, each fenced by its token; returns the tokens extended.
 * A slot freed meanwhile (its send given back while this ran) or already expired is left alone:
 * extending a freed slot would hold it for nobody, and an expired one may be another worker's now.
 */
export async function renewSlots(
  db: Kysely<Database>,
  held: readonly { slot: number; token: string }[],
  ttlMs: number,
): Promise<string[]> {
  if (held.length === 0) return []
  const { rows } = await sql<{ token: string }>`
    update mailer.send_slots s set expires_at = now() + make_interval(secs => ${ttlMs / 1000})
      from unnest(${held.map((h) => h.slot)}::int[], ${held.map((h) => h.token)}::uuid[]) as f(slot, token)
     where s.slot = f.slot and s.token = f.token and s.expires_at > now()
    returning s.token::text as token`.execute(db)
  return rows.map((r) => r.token)
}
