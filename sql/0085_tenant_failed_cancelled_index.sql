-- 0085: a tenant's failed and cancelled rows in id order, built without blocking writes; older binaries keep working.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: GET /v1/outbox?status=failed with a tenant (a token's tenant claim, or ?tenant=) walked
-- email_outbox_failed_cancelled_idx (status, id) in id order, checking each failed row's tenant on
-- its heap page until it had a page: every failed row of every tenant when the tenant has fewer
-- than a page (20,000 failed rows among a million kept: 20,123 buffers, 17-25 ms a page; about a
-- second per million failed rows), so a tenant's page cost what the other tenants had failed. Here a
-- tenant's failed or cancelled rows are found in id order directly. bench/list-scale.ts;
-- BENCHMARKS.md, round 41.
--
-- Writes: only a row that becomes failed or cancelled gets an entry, as in 0009's index (rare next
-- to sends); enqueues, claims, sent rows' settlements and heartbeats add none. tenant and status
-- are indexed already (email_outbox_dedupe_idx, the partial indexes' predicates), so no update that
-- was HOT stops being one. A tenant is at most 200 characters since 0050: every entry fits.
--
-- An index is invisible to binaries that predate it: they keep working on a database that has it.
-- Built CONCURRENTLY, as 0009: running migrate again after a failed build drops it first.
--! no-transaction
--! older-binaries-compatible
drop index concurrently if exists mailer.email_outbox_tenant_failed_cancelled_idx;
--! split
create index concurrently email_outbox_tenant_failed_cancelled_idx
  on mailer.email_outbox (tenant, status, id)
  where status in ('failed', 'cancelled');
