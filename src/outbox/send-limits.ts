// Statements behind the shared send limits: concurrency slots and per-mailbox pacing, all in database time.
import { type Kysely, sql } from 'kysely'
import type { Database } from '../db/schema.ts'

/**
 * Takes one free slot of 1..max (a free slot has no row or an expired one); null when all are busy.
 * Two takers racing for one slot: the loser's ON CONFLICT WHERE sees the winner's live expiry.
 */
export async function takeSlot(
  db: Kysely<Database>,
  p: { max: number; holder: string; token: string; ttlMs: number },
): Promise<number | null> {
  const { rows } = await sql<{ slot: number }>`
    with free as (
      select s from generate_series(1, ${p.max}::int) s
       where not exists (select 1 from mailer.send_slots t where t.slot = s and t.expires_at > now())
       order by random() limit 1
    )
    insert into mailer.send_slots as t (slot, holder, token, expires_at)
    select s, ${p.holder}, ${p.token}::uuid, now() + make_interval(secs => ${p.ttlMs / 1000}) from free
    on conflict (slot) do update
       set holder = excluded.holder, token = excluded.token, expires_at = excluded.expires_at
     where t.expires_at <= now()
    returning slot`.execute(db)
  return rows[0]?.slot ?? null
}

/** Frees a slot, fenced by its token (an expired and re-taken slot is not freed). */
export async function freeSlot(db: Kysely<Database>, slot: number, token: string): Promise<void> {
  await sql`delete from mailer.send_slots where slot = ${slot} and token = ${token}::uuid`.execute(
    db,
  )
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
