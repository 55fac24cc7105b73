-- 0161: mailer.pause_end and MAIL_FROM's claim (claim_past_paused) say in the catalogue what they keep to: pause_end the binary's pauseEnd, the claim's time differences finite.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: 0157 (released) calls mailer.pause_end "pauseEndText's expression": the binary's one
-- spelling of the shared pause rule is pauseEnd (src/outbox/paused-now.ts), pauseEndText gone
-- since, and 0157 cannot be corrected. And claim_past_paused (0157) reads two time differences as
-- extract(epoch from ... - now()), not through mailer.ms_until (0107): on Postgres 16 and older
-- an infinite side fails the claim (22008). None can have one, for reasons the function's text
-- alone does not show: probeInMs reads the kept time (probe_due_at) only while a row of MAIL_FROM's
-- is pending at it (mail_from_pending_at), and a hint only as the least of it and that time, or
-- after a search that deleted the hints at or past the time it found; nextDueMs reads a row's
-- send_at. A send_at is finite (email_outbox_send_at_check, 0038), the kept time is written from
-- one, and a hint from one. test/integration/endless-pause-reads.test.ts writes every one of those
-- times infinite by hand (with a pause lifted to '-infinity' and another to 'infinity'), on
-- Postgres 16 too, and the claim answers its row's time.
--
-- Now both say so where the database keeps them (\df+, obj_description): comments only, no
-- function, table or row changed.
--
-- Older binaries: nothing they call or read changes. Not security definer.
--! older-binaries-compatible

comment on function mailer.pause_end(timestamptz, interval, timestamptz, interval) is
  'When the pause holding a mailbox_pacing row (next_at, turn_interval, throttled_until) ends, paced by rate (the rate in force: the newest worker''s, ''pacing rate'', interval ''0'' when none noted): a time not after now(), or null, when none holds it. Invariant: the expression of pauseEnd (src/outbox/paused-now.ts), the binary''s one spelling of the shared pause rule; claim-past-paused-agrees.test.ts compares the claim''s reads with it (0157, 0161).';

comment on function mailer.claim_past_paused(integer, text, uuid, double precision, boolean, integer, text, double precision) is
  'The claim of a worker that knows MAIL_FROM''s pause (paused_key): its rows left out while the pause stands past hold_ms (pausedMs), then its one probe (probeInMs until a row of it is due), other senders'' rows claimed as claim_batch does. The pause''s remainder reads through mailer.ms_until; its other time differences (probeInMs, nextDueMs) have finite sides only: the kept time is read only while a row is pending at it, a hint only beside it, a next row by its send_at (email_outbox_send_at_check); endless-pause-reads.test.ts writes them infinite, on Postgres 16 too (0157, 0161).';
