-- 0045: finished rows by template, built without blocking writes; older binaries keep working.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: GET /v1/outbox?template=… walked the primary key newest first until it had a page of
-- matches: past every kept row when fewer matched, so a template with few rows, or none, read the
-- whole table (200,000 kept rows of 1 KB bodies: 0.37-0.46 s and 100,000 buffers a page, a
-- sequential scan), and giving `status=sent` too read as much: sent rows have no index of their own,
-- so refusing `template` without `status` would not have helped. Finished rows are found here;
-- pending and sending ones through the partial indexes that hold them (src/outbox/candidate-ids.ts),
-- as a correlation id's are (0010). bench/template-filter.ts; BENCHMARKS.md, round 34.
--
-- Writes: only finished row versions that came from a template get an entry, so a templated mail
-- pays one index insert, at its settlement (about 110 bytes of WAL); its enqueue and claim pay
-- nothing, and a mail enqueued with mailer.enqueue_email (template NULL) pays nothing.
--
-- An index is invisible to binaries that predate it: they keep working on a database that has it.
-- Built CONCURRENTLY, as 0010: running migrate again after a failed build drops it first.
--! no-transaction
--! older-binaries-compatible
drop index concurrently if exists mailer.email_outbox_template_idx;
--! split
create index concurrently email_outbox_template_idx
  on mailer.email_outbox (template, id)
  where template is not null and status in ('sent', 'failed', 'cancelled');
