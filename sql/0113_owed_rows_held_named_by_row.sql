-- 0113: the end of a mailbox's owed probe names a row it left locked by the row's id, not the mailbox's address.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: 0109's notification carried the mailbox's address ('owed-rows-held ' || mailbox), and every
-- session of any role that LISTENs on mailer_outbox hears it (LISTEN takes no privilege): an
-- address of the messages, where the channel carries only wake-ups and row ids (migration 0030).
-- Now it names the lowest id of the rows it left locked, 'owed-rows-held ' || id: a worker of this
-- release reads that row's sender_key in the statement that brings the mailbox's rows due
-- (held-owed-rows.ts). Otherwise as 0109: the same update, the same rows left, read unlocked (a
-- plain read never waits) by email_outbox_sender_key_idx.
--
-- Cost: as 0109's, only where the owed state ends. Same trigger, same function name and
-- signature: replaced.
--
-- Older binaries hear the notification as a plain wake (the payload is no bare id: notifiedRowId),
-- and the rows they leave behind wait as before; a worker of 0109's release ignores this payload
-- likewise (its rows wait for the probe's end, as before 0109).
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
