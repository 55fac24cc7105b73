-- 0112: an interrupted send's lookup in a past sender mailbox waits out that mailbox's throttle and owed probe, and the probe's end brings it due.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: an interrupted send's lookup asks the mailboxes its row may have gone from before
-- (interrupted-lookup.ts), but, as a send would, not one paused by a throttle or whose probe is
-- owed after MAIL_FROM's pause (a rolling deploy that changed MAIL_FROM: the other release's).
--
-- 1. mailbox_pacing.throttled_until: when the last throttle noted for the mailbox ends. With
-- pacing on, a throttle that ended before the mailbox's next turn (the send it met had just taken
-- a turn) left only that turn (next_at, turn_interval kept), which is the sends' to wait for, not a
-- lookup's: the lookup asked the throttled mailbox. pauseMailbox writes it in the statement that
-- notes the throttle; the gate's pause read (mailboxPausedFor) reads it in its statement: nothing
-- added on the send's hot path (takePacing neither reads nor writes it). Older binaries' throttles
-- leave it as it was (NULL): their pauses count by next_at and turn_interval, as before.
--
-- 2. mailer.owed_probe_lookups: a row held for an owed probe goes back; it names its own sender,
-- not the mailbox it waits for, so 0092's trigger (rows of that sender_key) never brought it due:
-- it went back due 1 s later and was claimed once a second for as long as the probe was out. A
-- worker of this release gives it back due when the probe out surely ends, as a row naming the
-- mailbox (owed-probe-end.ts), and notes it here (owed-probe-lookups.ts); the owed state's end,
-- however it ends (the probe's answer, claim_past_paused's clears, the reclaim's stale clear, an
-- older binary's too), brings the noted rows due now with a wake-up, and forgets them.
--
-- Which rows: those noted for the mailbox, still pending, due later, last given back for a pause
-- (mailbox_paused): a row settled or claimed since, or given back for something else, is left
-- alone. A row another transaction holds locked is skipped, never waited for: it comes due at the
-- time given. A note written after this statement's snapshot stays for the next owed end (its
-- row's give-back brings it due itself when the owed state ended first: owedRowDueIfProbeEnded).
--
-- Cost: the trigger fires only where the owed state ends (as 0092's: UPDATE OF probe_owed, true to
-- false); it reads and deletes the mailbox's notes by this table's primary key, and the rows by
-- theirs. Nothing on the hot path reads or writes the table. Not security definer: the role that
-- ends the owed state (a worker's) writes both tables anyway (deploy/README.md step 7's default
-- privileges cover a new table). The column is added without a default: no table rewrite.
--
-- Older binaries neither read nor write the column or the table; their ends of an owed state fire
-- the trigger, which finds no note of theirs. Nothing they call changes.
--! older-binaries-compatible

alter table mailer.mailbox_pacing add column if not exists throttled_until timestamptz;

create table if not exists mailer.owed_probe_lookups (
  -- The mailbox whose owed probe the row's lookup waits for, as the send gate keys it.
  mailbox text not null,
  outbox_id bigint not null,
  primary key (mailbox, outbox_id)
);

create or replace function mailer.owed_probe_lookups_due() returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
set standard_conforming_strings = on
as $$
declare
  noted bigint[];
begin
  with forgotten as (
    delete from mailer.owed_probe_lookups w where w.mailbox = new.mailbox returning w.outbox_id
  )
  select array_agg(outbox_id) into noted from forgotten;
  if noted is null then
    return null;
  end if;
  -- Invariant: only pending rows given back for a pause move, only earlier; by primary key.
  update mailer.email_outbox o set send_at = now()
   where o.ctid = any(array(
           select c.ctid from mailer.email_outbox c
            where c.id = any(noted)
              and c.status = 'pending' and c.send_at > now() and c.last_error_code = 'mailbox_paused'
              for update of c skip locked))
     and o.status = 'pending' and o.send_at > now();
  if found then
    perform pg_notify('mailer_outbox', '');
  end if;
  return null;
end $$;

create trigger mailbox_pacing_owed_probe_end_lookups after update of probe_owed on mailer.mailbox_pacing
  for each row
  when (old.probe_owed and not new.probe_owed)
  execute function mailer.owed_probe_lookups_due();
