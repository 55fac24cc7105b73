// The pause mix's exact record of the soak's own database: every change of mailer.mailbox_pacing, every send's last check and every claim, each with its time, written by test-only triggers.
import type { Database } from '../harness.ts'

/** One write to a mailer.mailbox_pacing row, as the row stood after it (Date.now() scale). */
export interface PacingChange {
  seq: number
  /** clock_timestamp() inside the writing statement: the write, before its commit. */
  at: number
  op: 'INSERT' | 'UPDATE' | 'DELETE'
  mailbox: string
  /** False for a deleted row. */
  probeOwed: boolean
  probeId: string | null
}

/** A last check that started a send (start_sends set send_started_at to its now()). */
export interface SendStart {
  outboxId: string
  /** The check's now(): its snapshot was taken after it, so it saw every commit before it. */
  checkedAt: number
}

/** A claim of a row (a new lease_token): its gate's read, and any lookup of it, came after. */
export interface Claim {
  outboxId: string
  /** The claim's now(): its transaction's start, before the claim committed. */
  claimedAt: number
}

/**
 * Installs the triggers in the soak's own database (after its migration, before any worker):
 * nothing of the engine changes; they only append to chaos_watch's tables, which no statement of
 * the engine reads. Security definer: a worker's role needs no grant on them. Changes that leave a
 * row as it was (an upsert's no-op) are not written.
 */
export async function installPacingLog(db: Database): Promise<void> {
  await db.q(`
    create schema chaos_watch;
    create table chaos_watch.pacing_changes (
      seq bigserial primary key, at timestamptz not null default clock_timestamp(),
      op text not null, mailbox text not null, probe_owed boolean not null, probe_id bigint);
    create table chaos_watch.send_starts (
      seq bigserial primary key, outbox_id bigint not null, checked_at timestamptz not null);
    create function chaos_watch.note_pacing() returns trigger language plpgsql
      security definer set search_path = pg_catalog as $f$
    begin
      if tg_op = 'DELETE' then
        insert into chaos_watch.pacing_changes (op, mailbox, probe_owed, probe_id)
        values (tg_op, old.mailbox, false, null);
        return old;
      end if;
      if tg_op = 'UPDATE' and new is not distinct from old then return new; end if;
      insert into chaos_watch.pacing_changes (op, mailbox, probe_owed, probe_id)
      values (tg_op, new.mailbox, new.probe_owed, new.probe_id);
      return new;
    end $f$;
    create trigger chaos_watch_pacing after insert or update or delete on mailer.mailbox_pacing
      for each row execute function chaos_watch.note_pacing();
    create function chaos_watch.note_start() returns trigger language plpgsql
      security definer set search_path = pg_catalog as $f$
    begin
      insert into chaos_watch.send_starts (outbox_id, checked_at) values (new.id, new.send_started_at);
      return new;
    end $f$;
    create trigger chaos_watch_start after update of send_started_at on mailer.email_outbox
      for each row when (new.send_started_at is not null
                         and new.send_started_at is distinct from old.send_started_at)
      execute function chaos_watch.note_start();
    create table chaos_watch.claims (
      seq bigserial primary key, outbox_id bigint not null, claimed_at timestamptz not null);
    create function chaos_watch.note_claim() returns trigger language plpgsql
      security definer set search_path = pg_catalog as $f$
    begin
      insert into chaos_watch.claims (outbox_id, claimed_at) values (new.id, now());
      return new;
    end $f$;
    create trigger chaos_watch_claim after update of lease_token on mailer.email_outbox
      for each row when (new.lease_token is not null
                         and new.lease_token is distinct from old.lease_token)
      execute function chaos_watch.note_claim();`)
}

/** Everything the triggers wrote, in the order written. */
export async function readPacingLog(
  db: Database,
): Promise<{ changes: PacingChange[]; starts: SendStart[]; claims: Claim[] }> {
  const changes = await db.q<{
    seq: string
    at: number
    op: PacingChange['op']
    mailbox: string
    probe_owed: boolean
    probe_id: string | null
  }>(
    // Ordered by the column: an output column named seq (text) would order as text ('10' < '9').
    `select c.seq::text as seq, extract(epoch from c.at) * 1000 as at, c.op, c.mailbox, c.probe_owed,
            c.probe_id::text as probe_id
       from chaos_watch.pacing_changes c order by c.seq`,
  )
  const starts = await db.q<{ outbox_id: string; checked_at: number }>(
    `select outbox_id::text, extract(epoch from checked_at) * 1000 as checked_at
       from chaos_watch.send_starts order by seq`,
  )
  const claims = await db.q<{ outbox_id: string; claimed_at: number }>(
    `select outbox_id::text, extract(epoch from claimed_at) * 1000 as claimed_at
       from chaos_watch.claims order by seq`,
  )
  return {
    changes: changes.map((c) => ({
      seq: Number(c.seq),
      at: Number(c.at),
      op: c.op,
      mailbox: c.mailbox,
      probeOwed: c.probe_owed,
      probeId: c.probe_id,
    })),
    starts: starts.map((s) => ({ outboxId: s.outbox_id, checkedAt: Number(s.checked_at) })),
    claims: claims.map((c) => ({ outboxId: c.outbox_id, claimedAt: Number(c.claimed_at) })),
  }
}
