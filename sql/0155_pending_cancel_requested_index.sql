-- 0155: the pending rows whose cancel is recorded (an interrupted send's, left for a worker to look up), by id, built without blocking writes; older binaries keep working.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: a cancel of a pending row that keeps an interrupted send's mark (Graph may have delivered
-- it) records the request and leaves the row pending, due now, for a worker to look that send up
-- (src/outbox/cancelled-interrupted.ts). A bulk cancel must not match such a row again, or its
-- batches never finish; read from the heap, that check cost every pending row the filter matched a
-- heap visit per batch, where the claim index alone (email_outbox_claim_idx) had answered
-- (bulk-actions.test.ts: 416 heap pages for a batch of 50 over 2,000 pending rows). Here those
-- few rows are listed by id, and the rest of a bulk cancel's candidates stay index-only.
--
-- Writes: an entry only when a pending row's cancel is recorded (rare); enqueues, claims,
-- settlements and heartbeats add none. status is indexed already; cancel_requested_at is written
-- only by a cancel and a requeue, whose updates were not HOT before either (status or send_at).
--
-- An index is invisible to binaries that predate it: they keep working on a database that has it.
-- Built CONCURRENTLY, as 0009: running migrate again after a failed build drops it first.
--! no-transaction
--! older-binaries-compatible
drop index concurrently if exists mailer.email_outbox_pending_cancel_requested_idx;
--! split
create index concurrently email_outbox_pending_cancel_requested_idx
  on mailer.email_outbox (id)
  where status = 'pending' and cancel_requested_at is not null;
