-- 0030: a transaction that inserts one outbox row names it in its notification, and a claim of that row alone.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: a pickup trailed graphile-worker's by 0.1 ms, the claim's time in Postgres (rounds 27-28):
-- mailer.claim_batch probes the priorities, scans each for candidates and then updates, three
-- statements inside PL/pgSQL, 0.51-0.67 ms a call (mean execution) against get_job's 0.20-0.35. A
-- worker with no backlog that hears of one new row needs none of the probing: mailer.claim_notified
-- locks that row by its primary key, and takes it only if it is due and the first pending row in
-- claim order (one probe of the claim index's first entry), in one statement: 0.37-0.54 ms against
-- 0.51-0.67 for claim_batch in the same runs, the round trip 0.07-0.17 ms shorter paired (an A/A
-- pair -0.04 to +0.11; bench/claim-trip.ts, four runs of 300 calls, BENCHMARKS.md round 29). A
-- row still pending but not taken (locked, not due, a row ahead of it) sends the worker to
-- mailer.claim_batch as before; a row no longer pending (another worker took it) ends the claim.
--
-- The notification: '' as before, except from a transaction whose inserts so far are one row: its
-- id. A BEFORE ROW trigger keeps a transaction-local note (mailer.outbox_inserted: the first row's
-- id, then '-' from the second row on; its WHEN skips the call from the third row on, so a bulk
-- insert runs two trigger calls, not one per row). The statement trigger (0001) sends the note.
-- A transaction of many rows thus sends '' once, or, when its first statement inserted one row,
-- that id and then '' (two notifications, never more); a rolled-back savepoint drops its note and
-- its notifications together. A row named but never inserted (another BEFORE trigger dropped it)
-- is not pending: its claim takes nothing, and its transaction inserted nothing else.
--
-- Older binaries ignore the payload.
--! older-binaries-compatible

create function mailer.note_outbox_insert() returns trigger language plpgsql as $$
begin
  perform set_config('mailer.outbox_inserted',
                     case when coalesce(current_setting('mailer.outbox_inserted', true), '') = ''
                          then new.id::text else '-' end,
                     true);
  return new;
end $$;

create trigger email_outbox_note_insert before insert on mailer.email_outbox
  for each row
  when (coalesce(current_setting('mailer.outbox_inserted', true), '') <> '-')
  execute function mailer.note_outbox_insert();

-- A wake-up hint: '' (look for due rows), or the id of the one row its transaction inserted so far.
create or replace function mailer.notify_outbox() returns trigger language plpgsql as $$
declare
  noted text := coalesce(current_setting('mailer.outbox_inserted', true), '');
begin
  perform pg_notify('mailer_outbox', case when noted = '-' then '' else noted end);
  return null;
end $$;

-- Claims the row `row_id` alone, as mailer.claim_batch would claim it (same lease, mark, result
-- tuple; without mark_started, a commit that does not wait for its flush, as claim_unflushed), if it
-- is pending, due, not locked, and the first pending row in claim order (priority, send_at, id):
-- then no claim could have taken another row before it. Returns its lease as a one-element JSON
-- array; an empty array when the row is no longer pending; null when it is pending and was not
-- taken (locked, not due, a row ahead of it): the caller then claims with claim_batch.
-- Invariant: a row is 'sending' only with a lease token and expiry; SKIP LOCKED keeps claimers disjoint.
create function mailer.claim_notified(row_id bigint, worker text, token uuid, lease_seconds float8,
                                      mark_started boolean, default_max_attempts integer)
returns json
language plpgsql volatile
set enable_seqscan = off
set enable_bitmapscan = off
set enable_sort = off
set enable_indexscan = on
set plan_cache_mode = force_generic_plan
as $$
declare
  leases json;
begin
  if not mark_started then
    perform set_config('synchronous_commit', 'off', true);
  end if;
  -- The first pending entry of the claim index: one probe (an initplan), however many rows wait
  -- behind it; a row ahead of row_id, due or not, sends the caller to claim_batch.
  with picked as (
    select o.ctid, o.send_started_at is not null as ambiguous
      from mailer.email_outbox o
     where o.id = row_id and o.status = 'pending' and o.send_at <= now()
       and o.id = (select f.id from mailer.email_outbox f
                    where f.status = 'pending'
                    order by f.priority, f.send_at, f.id
                    limit 1)
       for update of o skip locked
  ), claimed_rows as (
    update mailer.email_outbox o
       set status = 'sending',
           attempts = o.attempts + 1,
           lease_owner = worker,
           lease_token = token,
           lease_expires_at = now() + make_interval(secs => lease_seconds),
           -- As in claim_batch: an interrupted send's mark stays; an expiry is judged in the slot.
           send_started_at = case
             when o.send_started_at is not null then o.send_started_at
             when mark_started and o.cancel_requested_at is null and o.expires_at is null then now()
           end
      from picked p
     where o.ctid = p.ctid
    returning o.id, o.tenant, o.attempts,
              coalesce(o.max_attempts, default_max_attempts) as max_attempts,
              o.correlation_id, o.message, o.template, o.source_row,
              coalesce(o.expires_at <= now(), false) as expired,
              o.cancel_requested_at is not null as cancel_requested,
              p.ambiguous,
              o.send_started_at is not null as marked
  )
  select json_agg(json_build_array(c.id::text, c.tenant, c.attempts, c.max_attempts,
                    c.correlation_id, c.message, c.template, c.source_row, c.expired,
                    c.cancel_requested, c.ambiguous, c.marked and not c.ambiguous))
    into leases
    from claimed_rows c;
  -- Not taken, and not pending any more: another worker took it (or it was cancelled, deleted, or
  -- never inserted: a trigger of the application's dropped it). It was all the news there was, so
  -- there is nothing for claim_batch to find: an empty array says so (each other worker that heard
  -- the same notification runs this one statement, not a claim_batch as well).
  if leases is null
     and not exists (select from mailer.email_outbox o where o.id = row_id and o.status = 'pending') then
    return '[]'::json;
  end if;
  return leases;
end $$;
