-- 0137: mailer.claim_notified runs its one claim statement and nothing else when it takes the row.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: 0030's function ran three statements inside PL/pgSQL per call: `perform set_config(...)`,
-- the claim, and its IF `leases is null and not exists (...)`, which holds a subquery and so ran
-- as a query of its own (executor start and end) even when the row was taken. Now the
-- synchronous_commit setting is an assignment and the IF tests `leases is null` first, both simple
-- expressions that PL/pgSQL evaluates without a statement; the pending check runs only when the row
-- was not taken. Instructions per claim of a Postgres 18 backend (callgrind, 200 claims of one row
-- each, taken): 878k before, 849k after (-3.4 %, measured without the two pins below, about 4k of
-- it); the claim statement, its pinned plans (the SET clauses as 0030's) and its answers are
-- unchanged (BENCHMARKS.md round 46 (claimfn)). 0050's pins (search_path, standard_conforming_strings)
-- are restated: a create or replace sets the function's settings to those it lists.
--
-- Same signature, result and effects: an older binary calls it as before.
--! older-binaries-compatible

-- Claims the row `row_id` alone, as mailer.claim_batch would claim it (same lease, mark, result
-- tuple; without mark_started, a commit that does not wait for its flush, as claim_unflushed), if it
-- is pending, due, not locked, and the first pending row in claim order (priority, send_at, id):
-- then no claim could have taken another row before it. Returns its lease as a one-element JSON
-- array; an empty array when the row is no longer pending; null when it is pending and was not
-- taken (locked, not due, a row ahead of it): the caller then claims with claim_batch.
-- Invariant: a row is 'sending' only with a lease token and expiry; SKIP LOCKED keeps claimers disjoint.
create or replace function mailer.claim_notified(row_id bigint, worker text, token uuid, lease_seconds float8,
                                      mark_started boolean, default_max_attempts integer)
returns json
language plpgsql volatile
set enable_seqscan = off
set enable_bitmapscan = off
set enable_sort = off
set enable_indexscan = on
set plan_cache_mode = force_generic_plan
set search_path = pg_catalog, pg_temp
set standard_conforming_strings = on
as $$
declare
  leases json;
  unflushed text;
begin
  -- An assignment, not PERFORM: a simple expression, evaluated without a statement of its own.
  if not mark_started then
    unflushed := set_config('synchronous_commit', 'off', true);
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
  -- Two IFs, not one AND: `leases is null` alone is a simple expression; the query runs only then.
  if leases is null then
    if not exists (select from mailer.email_outbox o where o.id = row_id and o.status = 'pending') then
      return '[]'::json;
    end if;
  end if;
  return leases;
end $$;
