// Statements behind the shared send limits: concurrency slots and per-mailbox pacing, all in database time.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

/**
 * Takes one free slot of 1..max (a free slot's lease has expired); null when all are busy.
 * Slot rows are permanent and only updated (HOT: no indexed column changes), so a busy send path
 * leaves no dead index entries behind for the next taker to wade through, as inserting and deleting
 * a row per send did. SKIP LOCKED keeps racing takers on different slots; a slot another taker
 * committed in between is rechecked on its latest version and passed over.
 */
export async function takeSlot(
  db: Kysely<Database>,
  p: { max: number; holder: string; token: string; ttlMs: number },
): Promise<number | null> {
  const take = () =>
    sql<{ slot: number | null; missing: boolean }>`
      with taken as (
        update mailer.send_slots t
           set holder = ${p.holder}, token = ${p.token}::uuid,
               expires_at = now() + make_interval(secs => ${p.ttlMs / 1000})
         where t.slot = (select s.slot from mailer.send_slots s
                          where s.slot <= ${p.max}::int and s.expires_at <= now()
                          order by random() limit 1
                          for update skip locked)
        returning t.slot
      )
      -- Rows are counted only when nothing was taken (an init plan the case reaches only then).
      select (select slot from taken) as slot,
             case when (select slot from taken) is null
                  then (select count(*) from mailer.send_slots where slot <= ${p.max}::int) < ${p.max}::int
                  else false end as missing`.execute(db)
  const first = (await take()).rows[0]
  if (first?.slot != null) return first.slot
  // All busy; or rows do not exist yet (first use, a raised limit): then create them and try again.
  if (!first?.missing || (await ensureSlots(db, p.max)) === 0) return null
  return (await take()).rows[0]?.slot ?? null
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

/** Frees a slot, fenced by its token (an expired and re-taken slot is not freed). */
export async function freeSlot(db: Kysely<Database>, slot: number, token: string): Promise<void> {
  await sql`update mailer.send_slots set expires_at = '-infinity'
             where slot = ${slot} and token = ${token}::uuid`.execute(db)
}

/**
 * GCRA pacing: takes the mailbox's next send time if it has come, and moves it one interval on.
 * Returns 0 when taken, else the milliseconds to wait (> 0).
 */
export async function takePacing(
  db: Kysely<Database>,
  p: { mailbox: string; intervalMs: number },
): Promise<number> {
  const { rows } = await sql<{ wait_ms: number }>`
    with taken as (
      insert into mailer.mailbox_pacing as m (mailbox, next_at)
      values (${p.mailbox}, now() + make_interval(secs => ${p.intervalMs / 1000}))
      on conflict (mailbox) do update
         set next_at = greatest(m.next_at, now()) + make_interval(secs => ${p.intervalMs / 1000})
       where m.next_at <= now()
      returning 0::float8 as wait_ms
    )
    select wait_ms from taken
    union all
    select greatest(1, extract(epoch from next_at - now()) * 1000)::float8
      from mailer.mailbox_pacing where mailbox = ${p.mailbox} and not exists (select 1 from taken)`.execute(
    db,
  )
  // Neither taken nor visible: another worker created the row after this statement's snapshot.
  // Ask again shortly; never count that as taken.
  return rows[0]?.wait_ms ?? 1
}

/** A provider throttle: no worker starts a send from this mailbox for `ms`. */
export async function pauseMailbox(
  db: Kysely<Database>,
  p: { mailbox: string; ms: number },
): Promise<void> {
  await sql`
    insert into mailer.mailbox_pacing as m (mailbox, next_at)
    values (${p.mailbox}, now() + make_interval(secs => ${p.ms / 1000}))
    on conflict (mailbox) do update
       set next_at = greatest(m.next_at, now() + make_interval(secs => ${p.ms / 1000}))`.execute(db)
}
