-- 0010: finished rows by correlation id, built without blocking writes; older binaries keep working.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: GET /v1/outbox?correlationId=… ("did the mail for order 123 go out?") walked the primary key
-- newest first until it had a page of matches: past every kept row when fewer matched, so a lookup
-- of one order read the whole table (about 2.6 GB and a second per million kept rows of 1 KB
-- bodies), pushing the application's own pages out of the cache. Finished rows are found here;
-- pending and sending ones through the partial indexes that hold them (src/outbox/candidate-ids.ts).
--
-- Writes: only finished row versions that carry a correlation id get an entry, so a mail with one
-- pays one index insert, at its settlement (about 100 bytes of WAL); its insert and claim pay
-- nothing, and a mail without one pays nothing. Indexing every version would cost three entries
-- per mail. BENCHMARKS.md, round 18.
--
-- An index is invisible to binaries that predate it: they keep working on a database that has it.
-- Built CONCURRENTLY, as 0009: running migrate again after a failed build drops it first.
--! no-transaction
--! older-binaries-compatible
drop index concurrently if exists mailer.email_outbox_correlation_idx;
--! split
create index concurrently email_outbox_correlation_idx
  on mailer.email_outbox (correlation_id, id)
  where correlation_id is not null and status in ('sent', 'failed', 'cancelled');
