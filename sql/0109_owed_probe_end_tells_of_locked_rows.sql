-- 0109: the end of a mailbox's owed probe tells the workers of rows given back for it that it found locked, so they bring them due once free.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: 0092's trigger brings the rows given back for an owed probe due at once when the owed state
-- ends, but skips a row another transaction holds locked at that moment (an application's open
-- UPDATE, an API action, a claim): it never waits for a user's lock, as it runs inside the worker's
-- statement that ends the owed state. Such a row kept the time it was given back to, the probe's
-- end (its send deadline or its lease's end, up to LEASE_SECONDS away), though it may go out now.
-- Now, when rows stay behind, the same trigger also notifies the channel with the payload
-- 'owed-rows-held ' || the lowest id of the rows it left locked (never the mailbox's address: every
-- session of any role that LISTENs on mailer_outbox hears it, and the channel carries only wake-ups
-- and row ids, migration 0030): a worker of this release reads that row's sender_key and brings the
-- mailbox's rows due (skip locked) about once a second until none is left held, ending at their own
-- due time at the latest (held-owed-rows.ts). The rows left are read after the update, unlocked
-- (a plain read never waits), by email_outbox_sender_key_idx: the rows moved are due now and no
-- longer counted.
--
-- Cost: as 0092's, only where the owed state ends; one index read more there. Same trigger, same
-- function name and signature: replaced.
--
-- Older binaries hear the notification as a plain wake (the payload is no bare id: notifiedRowId),
-- and the rows they leave behind wait as before.
--! older-binaries-compatible

create or replace function mailer.owed_probe_rows_due() returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
set standard_conforming_strings = on
as $$
declare
  held bigint;
begin
  -- Invariant: only pending rows move, only earlier; email_outbox_sender_key_idx finds them.
  update mailer.email_outbox o set send_at = now()
   where o.ctid = any(array(
           select c.ctid from mailer.email_outbox c
            where c.status = 'pending' and c.sender_key is not null and c.sender_key = new.mailbox
              and c.send_at > now() and c.last_error_code = 'mailbox_paused'
              for update of c skip locked))
     and o.status = 'pending' and o.send_at > now();
  if found then
    perform pg_notify('mailer_outbox', '');
  end if;
  -- The rows skipped (locked): still due later. A worker of this release brings them due when free.
  select min(c.id) into held from mailer.email_outbox c
   where c.status = 'pending' and c.sender_key is not null and c.sender_key = new.mailbox
     and c.send_at > now() and c.last_error_code = 'mailbox_paused';
  if held is not null then
    perform pg_notify('mailer_outbox', 'owed-rows-held ' || held);
  end if;
  return null;
end $$;
