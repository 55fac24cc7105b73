-- 0104: mailer.defer_paused_rows moves no row for a pause with no end (next_at 'infinity', set by hand): they stay as they are.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: a mailbox an operator paused to 'infinity' by hand, then throttled by Graph on a send already
-- under way (a 429 past the hold), had its waiting rows moved to the pause's end: send_at
-- 'infinity', which the table refuses (23514 email_outbox_send_at_check, 0038). The statement
-- failed, the worker logged "could not move a paused mailbox's rows to its pause's end" and the
-- rows were left as they were. That is now the answer, without the error: an endless pause moves
-- nothing. Its rows are claimed and given back to a recheck a minute ahead as mailbox_paused
-- (endless-pause.ts, ENDLESS_PAUSE_RECHECK_MS, which the engine owns: no second copy of it here),
-- and keep their send_at, so lifting the pause lets them go at once. A finite pause moves its rows
-- as 0039's did.
--
-- Same signature, answer, settings (0050's search_path and standard_conforming_strings, which a
-- restatement would otherwise drop), owner and privileges; every other line as 0039's.
--
-- Older binaries call it by name as before: they keep working, and their throttles meeting an
-- endless pause log the warning no more.
--! older-binaries-compatible

-- A mailbox a row names itself, paused past a row's hold (a throttle, a spent quota): its pending
-- rows due before the pause ends are moved to that end in one statement, by the worker whose send
-- met the pause, instead of each being claimed, given back and checked against its history there
-- (MAIL_FROM's rows are left unclaimed instead: claim_past_paused). One write per row and pause,
-- through email_outbox_named_sender_idx; rows another transaction holds are skipped (they go back
-- as before when claimed), and so are rows whose expiresAt comes first (send_at must stay before
-- it: their claim expires them). A pause with no end moves none (send_at stays finite: 0038).
-- Returns how many rows moved.
create or replace function mailer.defer_paused_rows(paused_key text) returns integer
language plpgsql volatile
set enable_seqscan = off
set enable_bitmapscan = off
set plan_cache_mode = force_generic_plan
set search_path = pg_catalog, pg_temp
set standard_conforming_strings = on
as $$
declare
  pause_end timestamptz;
  ctids tid[];
  moved integer;
begin
  select p.next_at into pause_end from mailer.mailbox_pacing p where p.mailbox = paused_key;
  if pause_end is null or pause_end <= now() or not isfinite(pause_end) then
    return 0;
  end if;
  select array_agg(c.ctid) into ctids
    from (select o.ctid from mailer.email_outbox o
           where o.status = 'pending' and o.sender_key is not null and o.sender_key = paused_key
             and o.send_at < pause_end and (o.expires_at is null or o.expires_at > pause_end)
             for update of o skip locked) c;
  if ctids is null then
    return 0;
  end if;
  update mailer.email_outbox o set send_at = pause_end where o.ctid = any(ctids);
  get diagnostics moved = row_count;
  return moved;
end $$;
