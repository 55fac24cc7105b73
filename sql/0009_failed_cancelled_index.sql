-- 0009: an index of the failed and cancelled rows, built without blocking writes.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: the table keeps every finished row, and nothing indexed the finished statuses. So counting
-- finished rows by status (/metrics every 5 minutes, every /v1/stats) read the whole heap: with a
-- million kept rows of 1 KB bodies, 2.6 GB and about a second per count, past /v1/stats' 5 s limit
-- at a few million rows. And listing the newest failed rows (the ones held for review) walked the
-- primary key back through the sent rows to find them. With this index the counts read only indexes
-- (sent = all rows - pending - sending - failed - cancelled, the total from the primary key, the rest
-- from partial indexes: 22 MB per million rows), and the newest failed or cancelled rows are found
-- directly. BENCHMARKS.md, round 17.
--
-- Writes: only a row that becomes failed or cancelled gets an entry (rare next to sends). Claims and
-- settlements already change status, which other indexes' predicates read, so none of them was a
-- HOT update before and none becomes one less now; heartbeats change no indexed column and stay HOT.
--
-- Built CONCURRENTLY, which cannot run inside a transaction: the workers and the application's
-- enqueues go on while it reads the table. A build that fails (e.g. lock_timeout while waiting for
-- an old transaction) leaves an invalid index of this name; running migrate again drops it first.
--! no-transaction
drop index concurrently if exists mailer.email_outbox_failed_cancelled_idx;
--! split
create index concurrently email_outbox_failed_cancelled_idx
  on mailer.email_outbox (status, id)
  where status in ('failed', 'cancelled');
