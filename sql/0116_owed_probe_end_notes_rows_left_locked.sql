-- 0116: the end of a mailbox's owed probe notes every row it had to leave locked, an interrupted send's lookup row too, so the workers bring it due once free, polling or listening.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: at the owed state's end two triggers brought the rows waiting for the probe due, skipping a
-- row another transaction held locked (never waiting for a user's lock: they run inside the
-- statement that ends the owed state). 0109's named such a row of the mailbox in a notification,
-- heard only by a listening worker; 0112's deleted the notes of lookup rows (rows naming another
-- sender, mailer.owed_probe_lookups) before its skip-locked update, so a lookup row locked then lost
-- its note and, like every held row under LISTEN_MODE=poll, waited for the probe's end (its send
-- deadline or lease end, up to LEASE_SECONDS).
--
-- Now one function on the one trigger (0092's; 0112's is dropped) brings both kinds due and keeps
-- one record of what stays behind: mailer.owed_probe_lookups, (mailbox, row) = "this row waits for
-- that mailbox's owed probe". A note is kept while its row still waits (pending, due later, last code
-- mailbox_paused: left locked), written for the mailbox's own rows so left too (an older binary's
-- give-back included), and forgotten once its row waits no more. A note whose mailbox's probe is no
-- longer owed is a row to bring due once free: a worker of this release does so, skip locked, about
-- a second after the notification and at each backstop poll (held-owed-rows.ts), LISTEN or not.
--
-- Which rows move: as before, pending rows given back for a pause (mailbox_paused), due later, of
-- the mailbox's sender_key (email_outbox_sender_key_idx) or noted for it (primary key); only earlier.
--
-- Notification: as 0109's, 'owed-rows-held ' || the lowest id of the mailbox's own rows left locked
-- (a round-44 worker brings that row's mailbox's rows due, as it did); 'owed-rows-held' alone when
-- only lookup rows stay (an older binary hears a plain wake). Never an address: every session
-- LISTENing on the channel hears it.
--
-- Cost: as 0092's, only where the owed state ends (UPDATE OF probe_owed, true to false); the notes
-- of the mailbox by this table's primary key. Nothing on the hot path changes. Not security definer:
-- the role that ends the owed state (a worker's) writes both tables anyway.
--
-- Older binaries: the table, its columns and the function's name and signature are unchanged; their
-- give-backs (own rows unnoted, lookup rows noted) and their statements (noteOwedProbeLookup,
-- round 44's heldOwedRowsDue) work as before, and their rows are brought due as before or sooner.
--! older-binaries-compatible

drop trigger if exists mailbox_pacing_owed_probe_end_lookups on mailer.mailbox_pacing;
drop function if exists mailer.owed_probe_lookups_due();

create or replace function mailer.owed_probe_rows_due() returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
set standard_conforming_strings = on
as $$
declare
  noted bigint[];
  moved boolean;
  held bigint;
begin
  select array_agg(w.outbox_id) into noted from mailer.owed_probe_lookups w where w.mailbox = new.mailbox;
  -- Invariant: only pending rows move, only earlier; email_outbox_sender_key_idx finds them.
  update mailer.email_outbox o set send_at = now()
   where o.ctid = any(array(
           select c.ctid from mailer.email_outbox c
            where c.status = 'pending' and c.sender_key is not null and c.sender_key = new.mailbox
              and c.send_at > now() and c.last_error_code = 'mailbox_paused'
              for update of c skip locked))
     and o.status = 'pending' and o.send_at > now();
  moved := found;
  -- Invariant: the noted rows given back for a pause only, only earlier; by primary key.
  if noted is not null then
    update mailer.email_outbox o set send_at = now()
     where o.ctid = any(array(
             select c.ctid from mailer.email_outbox c
              where c.id = any(noted)
                and c.status = 'pending' and c.send_at > now() and c.last_error_code = 'mailbox_paused'
                for update of c skip locked))
       and o.status = 'pending' and o.send_at > now();
    moved := moved or found;
  end if;
  if moved then
    perform pg_notify('mailer_outbox', '');
  end if;
  -- The mailbox's own rows left locked (a plain read never waits), noted as the lookup rows are.
  with left_locked as (
    select c.id from mailer.email_outbox c
     where c.status = 'pending' and c.sender_key is not null and c.sender_key = new.mailbox
       and c.send_at > now() and c.last_error_code = 'mailbox_paused'
  ), kept as (
    insert into mailer.owed_probe_lookups (mailbox, outbox_id)
    select new.mailbox, l.id from left_locked l
    on conflict do nothing
  )
  select min(l.id) into held from left_locked l;
  -- Notes of rows that wait no more (moved now; settled, claimed or given back otherwise) go.
  delete from mailer.owed_probe_lookups w
   where w.mailbox = new.mailbox
     and not exists (select from mailer.email_outbox c
                      where c.id = w.outbox_id and c.status = 'pending' and c.send_at > now()
                        and c.last_error_code = 'mailbox_paused');
  if held is not null then
    perform pg_notify('mailer_outbox', 'owed-rows-held ' || held);
  elsif exists (select from mailer.owed_probe_lookups w where w.mailbox = new.mailbox) then
    perform pg_notify('mailer_outbox', 'owed-rows-held');
  end if;
  return null;
end $$;
