-- 0022: the pending rows that carry an expiresAt, by expiry, built without blocking writes; older binaries keep working.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: a row nobody claims (a refused credential holding the workers off, a backlog waiting its
-- turn, no worker running) stayed pending past its expiresAt, for hours, shown as pending by the
-- API, /v1/stats and /metrics. The worker's reclaim now also fails such rows with code expired
-- (src/outbox/expiry-sweep.ts), at least once per lease length; this index finds them: a range
-- scan up to now(), 2 pages when none has expired. Without it the sweep read every pending row's
-- entry in the claim index (2,400 pages, 7 ms per reclaim with 50,000 pending; bench/expiry-sweep.ts).
--
-- Writes: only a row enqueued with an expiresAt gets an entry, at its insert and again at each
-- return to pending (a retry, a throttle): 66 B more WAL per such enqueue (533 against 467); a row
-- without one pays nothing (459 B either way). Claims and settlements already change status, which
-- other indexes' predicates read, so none of them was a HOT update before; heartbeats change no
-- indexed column and stay HOT. expires_at is never updated.
--
-- An index is invisible to binaries that predate it: they keep working on a database that has it.
-- Built CONCURRENTLY, as 0009: running migrate again after a failed build drops it first.
--! no-transaction
--! older-binaries-compatible
drop index concurrently if exists mailer.email_outbox_expiring_idx;
--! split
create index concurrently email_outbox_expiring_idx
  on mailer.email_outbox (expires_at)
  where status = 'pending' and expires_at is not null;
