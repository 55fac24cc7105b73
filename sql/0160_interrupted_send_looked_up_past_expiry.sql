-- 0160: a pending row keeping an interrupted send's mark may be due at or after its expiresAt (to be looked up there, never sent); a row with no such mark still may not.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: with GRAPH_MAILBOX_LOOKUP on, a row whose send was interrupted (Graph may have delivered it)
-- and whose expiresAt passed is claimed only to look that send up (src/outbox/expired-interrupted.ts).
-- A lookup that could not answer yet (within the lookup grace of the send's deadline, Graph not yet
-- having filed the message; or held back by its mailbox's pause, a throttle, a failed request) had to
-- fail the row expired, "may have delivered it", at once: email_outbox_expiry_check (expires_at >
-- send_at) let no row be due again past its expiresAt, and a wait inside the lease held the shared
-- send permit and the batch. Now such a row waits pending, its mark kept, due when the lookup may
-- answer, within its expiresAt plus the lookup grace plus an hour (settle.ts bounds it; past that it
-- fails expired naming the send, as before). A row without the mark is never due at or past its
-- expiresAt (enqueue, a retry through the API, a reschedule: all refused as before); a final row
-- (sent, failed, cancelled) keeps the send_at of its last wait. The claim (send_at <= now(),
-- email_outbox_claim_idx) and the expiry sweep (expires_at <= now(), email_outbox_expiring_idx,
-- marked rows left to a claim with lookups on) read the same columns and indexes as before.
--
-- Locks: the constraint is replaced NOT VALID in one ALTER TABLE (a moment's ACCESS EXCLUSIVE, no
-- scan: new writes are checked by it at once); VALIDATE then scans under SHARE UPDATE EXCLUSIVE,
-- which blocks no claim, send or enqueue. Every stored row passes (the old check implies the new).
-- Statement by statement; a failed run is repeated from the start. Same name, so an insert it
-- refuses names the same constraint (23514) as before.
--
-- Older binaries never schedule a row past its expiresAt; one that claims such a row (past its
-- expiresAt) fails it expired or looks it up as it did, so they keep working.
--! no-transaction
--! older-binaries-compatible
alter table mailer.email_outbox
  drop constraint if exists email_outbox_expiry_check,
  add constraint email_outbox_expiry_check
    check (expires_at is null or expires_at > send_at or send_started_at is not null
           or status in ('sent', 'failed', 'cancelled')) not valid;
--! split
alter table mailer.email_outbox validate constraint email_outbox_expiry_check;
