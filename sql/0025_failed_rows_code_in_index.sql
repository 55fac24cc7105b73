-- 0025: the failed and cancelled rows' index (0009) carries last_error_code, so status reads the newest failures' codes from it alone; older binaries keep working.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: `outbox-mailer status` counts the rows failed in the last 24 h by code among the newest
-- 10,000 failed rows (src/outbox/recent-failures.ts). With 0009's (status, id) the code came from
-- each row's heap page: up to 10,000 pages, one per failed row among the sent ones. status runs on a
-- new connection, and a new backend pays for the first touch of every shared-buffer page it reads
-- (its page tables are filled then): on a 2-core VM those pages cost 0.3–0.8 s on the first read,
-- 0.05 s on a second one (bench/status-reads.ts; BENCHMARKS.md, round 26). With the code in the
-- index the read is an index-only scan (as autovacuum leaves old rows all-visible): about half that.
--
-- Writes: still only a row that becomes failed or cancelled gets an entry, now with its code (a
-- short identifier). Claims and settlements already change status, which the index's predicate
-- reads, and nothing changes last_error_code without changing status: no update that was HOT
-- stops being one. The (status, id) reads of 0009 (counts, the newest failed rows, bulk actions)
-- find the same order in the new index; its name is kept.
--
-- Built CONCURRENTLY under a name of its own, then the old one dropped and the new one renamed:
-- the reads always have one of them. Running migrate again after a failed step starts over.
--! no-transaction
--! older-binaries-compatible
drop index concurrently if exists mailer.email_outbox_failed_cancelled_code_idx;
--! split
create index concurrently email_outbox_failed_cancelled_code_idx
  on mailer.email_outbox (status, id) include (last_error_code)
  where status in ('failed', 'cancelled');
--! split
drop index concurrently if exists mailer.email_outbox_failed_cancelled_idx;
--! split
alter index mailer.email_outbox_failed_cancelled_code_idx rename to email_outbox_failed_cancelled_idx;
