-- Deletes finished outbox rows (sent, failed, cancelled) idle for longer than :'keep', with their attempt history.
--
--   psql "$DATABASE_URL" -v keep='90 days' -f deploy/prune-finished.sql
--
-- outbox-mailer never deletes a row: the table keeps every message and its attempts, about 0.9 KB
-- per row with a short message and 2.9 KB with a 1 KB text body (BENCHMARKS.md, round 16). Run
-- this as often as you like (it prints how many rows it deleted, at most 10,000 per run: run it
-- again until it prints 0), e.g. nightly from cron or a Fly scheduled machine that has psql.
--
-- A row's last activity is the latest of its creation, its send time (a retry moves it), its sent
-- time, its cancel request and, unless sent, its last attempt (the time it failed). Rows in play (pending, sending) are never touched, and a row that a
-- retry through the API or a worker changes at the same moment is skipped (FOR UPDATE re-checks it,
-- SKIP LOCKED passes over it). Once a row is deleted its id answers 404, and its dedupe key can be
-- enqueued again as a new row: keep rows for longer than your application may repeat a dedupe key.
-- Lowest ids first, 10,000 at most, so that each run is one short transaction; each deleted row is
-- found by the outbox's primary key, its attempts by email_attempts' (outbox_id, id).
-- The walk stops where rows written within :'keep' begin, none of which can be due: ids follow the
-- time rows are written, so that place is found by bisecting the ids (about 25 primary key probes)
-- rather than by reading every kept row, as a run that found fewer than 10,000 did before. A row
-- written out of time order (inserted with an explicit created_at) may wait for a later run.
\set ON_ERROR_STOP on
\if :{?keep}
\else
  do $$ begin raise exception 'prune-finished.sql needs keep: psql -v keep=''90 days'' -f deploy/prune-finished.sql'; end $$;
\endif
with recursive bisect(lo, hi) as (
  -- Invariant: the first row at or after hi (if any) was written within :'keep'; lo only grows past
  -- rows written before it. Each step reads one row through the primary key.
  select (select min(id) from mailer.email_outbox), (select max(id) + 1 from mailer.email_outbox)
  union all
  select case when young then lo else mid + 1 end, case when young then mid else hi end
    from bisect,
         lateral (select (lo + hi) / 2 as mid) m,
         -- offset 0: evaluated once per step, not once per use above.
         lateral (select coalesce((select created_at >= now() - :'keep'::interval
                                     from mailer.email_outbox where id >= mid order by id limit 1),
                                  true) as young offset 0) y
   where lo < hi
), old as (
  select o.id
    from mailer.email_outbox o
   where o.id < (select coalesce(min(hi), 0) from bisect)
     and o.status in ('sent', 'failed', 'cancelled')
     and greatest(o.created_at, o.send_at, o.sent_at, o.cancel_requested_at) < now() - :'keep'::interval
     -- A failure has no column of its own: its time is its last attempt's (a row claimed for the
     -- first time long after it was written, behind a backlog, fails long after its send_at).
     and (o.status = 'sent'
          or coalesce((select max(a.finished_at) from mailer.email_attempts a where a.outbox_id = o.id),
                      o.created_at) < now() - :'keep'::interval)
   order by o.id
   limit 10000
     for update skip locked
), gone as (
  -- By an array of ids, so that each is an index probe: joined, Postgres guesses 10,000 rows and
  -- hashes them against a sequential scan of the table.
  delete from mailer.email_outbox o where o.id = any (array(select id from old)) returning o.id
), history as (
  delete from mailer.email_attempts a where a.outbox_id = any (array(select id from gone))
)
select count(*) as pruned from gone;
