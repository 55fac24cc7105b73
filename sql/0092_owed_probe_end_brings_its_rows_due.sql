-- 0092: the end of a mailbox's owed probe brings the rows given back for it due at once, with a wake-up.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: while MAIL_FROM's probe after a pause is owed (sql/0062), a row naming that mailbox is sent
-- only as the probe; a worker of another MAIL_FROM (a rolling deploy that changed it) that claims
-- such a row gives it back (mailbox_paused), due again 1 s later: 3-72 claims and 17-429 rows
-- claimed and given back a second for as long as the probe hung (bench/rolling-owed-rows.ts,
-- round 42). A worker of this release gives it back due when the probe out surely ends (its send
-- deadline or its lease's end: mailbox-pacing.ts), once per probe; so that it is sent no later
-- than before, the owed state's end brings it due now: this trigger, on every way the owed state
-- ends (the probe's answer, by an older binary too; claim_past_paused finding it sent or nothing of
-- MAIL_FROM's pending; the reclaim's stale-probe clear), in the statement that ends it, and a
-- notification wakes the workers (their claims find the rows due).
--
-- Which rows: pending, naming the mailbox (sender_key, email_outbox_sender_key_idx), due later,
-- last given back for a pause of it (mailbox_paused): a row an application scheduled later carries
-- no such code, or one of an earlier failure; a row given back to a pause's end that still stands
-- (a stale clear while paused) is claimed and given back to it once more. A row another
-- transaction holds locked is skipped, never waited for: it comes due at the time given, as before.
--
-- Cost: the trigger is on UPDATE OF probe_owed only, its WHEN true only where the owed state ends:
-- a pacing turn, a pause or a rate noted (the hot path's writes of mailbox_pacing) never name the
-- column and fire nothing. Not security definer: the role that ends the owed state (a worker's)
-- updates email_outbox anyway.
--
-- Older binaries end the owed state with the same statements (owed-probe.ts, stale-probes.ts,
-- claim_past_paused): the trigger fires for them too; a row they gave back due in 1 s comes due a
-- little sooner. Nothing they call changes.
--! older-binaries-compatible

create or replace function mailer.owed_probe_rows_due() returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
set standard_conforming_strings = on
as $$
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
  return null;
end $$;

create trigger mailbox_pacing_owed_probe_end after update of probe_owed on mailer.mailbox_pacing
  for each row
  when (old.probe_owed and not new.probe_owed)
  execute function mailer.owed_probe_rows_due();
