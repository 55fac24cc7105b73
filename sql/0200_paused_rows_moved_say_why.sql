-- 0200: the rows a named mailbox's pause moves to its end say why they wait (mailbox_paused, the throttle or refusal), in the same one write; older binaries keep working.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: a 403 (Graph refusing a mailbox rows name themselves: `from`, a template's from_address)
-- or a throttle past the rows' hold pauses that mailbox, and mailer.defer_paused_rows (0039, 0104)
-- moved its waiting rows to the pause's end setting send_at alone: no last error, no history. An
-- operator saw them pending, due in minutes, with nothing saying why (GET /v1/outbox's
-- lastErrorCode null; none in status's by-error-code line), where the rows a paused MAIL_FROM holds
-- say `mailbox_paused` with the pause's cause (waiting-rows.ts, paused-row-naming.ts), as do those
-- a claim gives back for a pause (paused-give-back.ts).
--
-- Now: an overload taking the code and the words to write (the caller's: the transport knows a
-- refusal's HTTP status and Graph's code, the database keeps only 'refused', 0172) and the codes
-- they replace, as a regular expression. A moved row with no code, or one of `renamed_codes` (the
-- caller's: a pacing turn's, a token wait's, an earlier pause's; none met by the row's own try), is
-- named in the UPDATE that moves it: one write per row, as before, no history entry (neither does
-- MAIL_FROM's naming write one). A code the row's own attempt met (Graph's, the refusal's on the
-- row that met it, a backoff's) is kept, as MAIL_FROM's naming keeps it. Every other line as
-- 0104's: the rows moved, the locks, the settings, the answer.
--
-- Cost: the same one write per row, no statement more; no HOT update was lost (send_at is in
-- email_outbox_claim_idx). It logs more: send_at leads the row and last_error trails it (0005), so
-- the bytes between, the message included, are logged, as a give-back's are, and a named row gains
-- an entry in email_outbox_pending_error_idx (0173), as a row given back for the pause does.
-- Measured (EXPLAIN (ANALYZE, WAL), 10,000 rows of a 100-byte message, no full-page image): 474 B
-- of WAL and 6.0 records a row (0104), now 954 B and 7.2 at the first pause, 761 B at the next (the
-- words the same; 0104: 474); 98-198 ms either way. A claim and give-back of each row, which the
-- move spares, wrote about 930 B and a history entry a row a pause (0039).
--
-- Older binaries call the one-argument mailer.defer_paused_rows (0104), unchanged here: their moves
-- name nothing, as before. The overload is invisible to them.
--! older-binaries-compatible

-- A mailbox a row names itself, paused past a row's hold: its pending rows due before the pause
-- ends are moved to that end and named (`paused_code`, `reason`) unless a code of their own try
-- stands (see above), in one statement, through email_outbox_named_sender_idx; rows another
-- transaction holds, and rows whose expiresAt comes first, are skipped; a pause with no end moves
-- none. Returns how many rows moved.
create or replace function mailer.defer_paused_rows(paused_key text, paused_code text, reason text,
                                                    renamed_codes text)
returns integer
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
  update mailer.email_outbox o
     set send_at = pause_end,
         last_error_code = case when o.last_error_code is null or o.last_error_code ~ renamed_codes
                                then paused_code else o.last_error_code end,
         last_error = case when o.last_error_code is null or o.last_error_code ~ renamed_codes
                           then reason else o.last_error end
   where o.ctid = any(ctids);
  get diagnostics moved = row_count;
  return moved;
end $$;
