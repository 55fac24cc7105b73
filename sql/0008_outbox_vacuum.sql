-- 0008: the outbox is vacuumed by a fixed count of dead row versions, and every vacuum cleans its indexes.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: each mail leaves two dead row versions behind (pending, then sending), and the pending one's
-- entry stays in the claim index until a vacuum cleans the indexes. Every claim's first probe walks
-- over those entries: 140,000 of them made a one-row pickup claim read 694 index pages instead of 4
-- (3.7 ms instead of 1.1).
-- The table keeps every finished row, so two size-relative defaults let them pile up as it grows:
-- - autovacuum waited for 2 % of the table's rows to be dead (0001's scale factor): 20,000 versions
--   with a million rows kept, 200,000 with ten million;
-- - a vacuum skips index cleanup when fewer than 2 % of the table's pages hold dead items
--   (vacuum_index_cleanup = auto): draining 10,000 mails into a million kept rows touched 0.95 % of
--   the pages, so the vacuum that followed left their 10,000 dead claim-index entries in place.
-- Now autovacuum comes every 10,000 dead versions (about 5,000 mails) whatever the table's size,
-- and each run cleans the indexes. Its price grows with the table: each run reads the whole
-- primary key (about 23 bytes per kept row). BENCHMARKS.md, round 16.
--
-- SHARE UPDATE EXCLUSIVE: does not block the workers' reads and writes.
alter table mailer.email_outbox
  set (vacuum_index_cleanup = on,
       autovacuum_vacuum_scale_factor = 0,
       autovacuum_vacuum_threshold = 10000);
