-- Deletes finished outbox rows (sent, failed, cancelled) idle for longer than :'keep', with their attempt history.
--
--   psql "$DATABASE_URL" -v keep='90 days' -f deploy/prune-finished.sql
--
-- outbox-mailer never deletes a row: the table keeps every message and its attempts, about 0.9 KB
-- per row with a short message and 2.9 KB with a 1 KB text body (BENCHMARKS.md, round 16). Run
-- this as often as you like (it prints how many rows it deleted, at most 10,000 per run: run it
-- again until it prints 0), e.g. nightly from cron or a Fly scheduled machine that has psql.
--
-- A row's last activity is the latest of its send time (a retry moves it), its sent time and its
-- cancel request. Rows in play (pending, sending) are never touched, and a row that a retry through
-- the API or a worker changes at the same moment is skipped (FOR UPDATE re-checks it, SKIP LOCKED
-- passes over it). Once a row is deleted its id answers 404, and its dedupe key can be enqueued
-- again as a new row: keep rows for longer than your application may repeat a dedupe key.
-- Lowest ids first, 10,000 at most, so that each run is one short transaction; the attempts of each
-- deleted row are found by email_attempts' primary key (outbox_id, id).
\set ON_ERROR_STOP on
\if :{?keep}
\else
  do $$ begin raise exception 'prune-finished.sql needs keep: psql -v keep=''90 days'' -f deploy/prune-finished.sql'; end $$;
\endif
with old as (
  select o.id
    from mailer.email_outbox o
   where o.status in ('sent', 'failed', 'cancelled')
     and greatest(o.send_at, o.sent_at, o.cancel_requested_at) < now() - :'keep'::interval
   order by o.id
   limit 10000
     for update skip locked
), gone as (
  delete from mailer.email_outbox o using old where o.id = old.id returning o.id
), history as (
  delete from mailer.email_attempts a using gone where a.outbox_id = gone.id
)
select count(*) as pruned from gone;
