-- 0019: a claim's update reaches the locked rows by ctid alone, and an empty claim runs no update.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: a pickup trailed graphile-worker's by 0.1 ms, and a one-row claim's round trip was longer
-- than its get_job's, most of it in Postgres (bench/claim-trip.ts, rounds 9 and 24). Of
-- mailer.claim_batch's (0006) five statements for one row, two only switched enable_indexscan off
-- and on around the update, which hash-joined a TID scan to the unnested list of picked rows to
-- carry each row's ambiguity and claim position. Now the update's only condition is the ctid
-- list, for which a TID scan is the one access path (sequential scans are off), so nothing is
-- switched; the few ambiguous rows are named by id, and claim order (priority, send_at, id) is
-- that of the JSON array. One row: three statements, 0.046-0.054 ms less of the function's time
-- in Postgres (median per call, two runs of 300, `bun run bench/claim-trip.ts 300 unflushed
-- sql/0006_claim_by_priority.sql` against this); an empty claim (a drain's last, a backstop poll)
-- runs the probe alone instead of four statements.
-- Priorities, candidates, look-ahead, locking, lease, signature and result are as in 0006, and a
-- claim that records its sends as started leaves rows with an expiry to the last check (0017).
--
-- Invariant: a row is 'sending' only with a lease token and expiry; SKIP LOCKED keeps claimers disjoint.
-- Claim order is (priority, send_at, id): priorities ascending, each range scanned in index order.
--! older-binaries-compatible
create or replace function mailer.claim_batch(n integer, worker text, token uuid, lease_seconds float8,
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
  picked_ids bigint[] := '{}';
  picked_ctids tid[] := '{}';
  ambiguous_ids bigint[] := '{}';
  more_ids bigint[];
  more_ctids tid[];
  more_ambiguous bigint[];
  pending_priorities smallint[];
  prio smallint;
  leases json;
  next_due_ms float8;
begin
  -- The priorities with pending rows, most urgent first, each found by one probe of the claim index.
  with recursive priorities(p) as (
    (select o.priority from mailer.email_outbox o
      where o.status = 'pending' order by o.priority limit 1)
    union all
    select (select o.priority from mailer.email_outbox o
             where o.status = 'pending' and o.priority > q.p order by o.priority limit 1)
      from priorities q
     where q.p is not null
  )
  -- With them, the earliest future send_at of each (one probe more per priority): what a claim
  -- that comes up short reports (rows it claims are due, so they cannot be the earliest future one).
  select coalesce(array_agg(q.p), '{}'),
         extract(epoch from min((select f.send_at from mailer.email_outbox f
                                  where f.status = 'pending' and f.priority = q.p and f.send_at > now()
                                  order by f.send_at limit 1)) - now()) * 1000
    into pending_priorities, next_due_ms
    from priorities q
   where q.p is not null;

  foreach prio in array pending_priorities loop
    -- ambiguous: the previous attempt began a send (read from the locked row version); such rows
    -- are rare, so they are listed by id and looked up in the update's result.
    select array_agg(c.id), array_agg(c.ctid), array_agg(c.id) filter (where c.ambiguous)
      into more_ids, more_ctids, more_ambiguous
      from (select o.id, o.ctid, o.send_started_at is not null as ambiguous
              from mailer.email_outbox o
             where o.status = 'pending' and o.priority = prio and o.send_at <= now()
             order by o.send_at, o.id
             limit n - cardinality(picked_ids)
             for update skip locked) c;
    if more_ids is null then
      continue;
    elsif cardinality(picked_ids) = 0 then
      picked_ids := more_ids;
      picked_ctids := more_ctids;
      ambiguous_ids := coalesce(more_ambiguous, '{}');
    else
      picked_ids := picked_ids || more_ids;
      picked_ctids := picked_ctids || more_ctids;
      ambiguous_ids := ambiguous_ids || coalesce(more_ambiguous, '{}');
    end if;
    exit when cardinality(picked_ids) >= n;
  end loop;

  -- Only a claim that came up short says when the next row is due.
  if cardinality(picked_ids) >= n then
    next_due_ms := null;
  end if;
  -- Nothing due (a drain's last claim, a backstop poll): no update to run.
  if cardinality(picked_ids) = 0 then
    return json_build_object('leases', '[]'::json, 'nextDueMs', next_due_ms);
  end if;

  -- We hold the row locks, so each row is still at its ctid (a statement in a volatile function
  -- sees rows committed before it began, including a version that the lock itself followed).
  -- A TID scan is the only access path left to this statement (no index covers ctid, sequential
  -- scans are off): it needs no setting switched around it, nor a join to the picked list.
  with claimed_rows as (
    update mailer.email_outbox o
       set status = 'sending',
           attempts = o.attempts + 1,
           lease_owner = worker,
           lease_token = token,
           lease_expires_at = now() + make_interval(secs => lease_seconds),
           -- An interrupted send's mark stays until it is resolved; a clean row may be marked now,
           -- unless it has an expiry: that is judged again by the last check, in its send slot.
           send_started_at = case
             when o.send_started_at is not null then o.send_started_at
             when mark_started and o.cancel_requested_at is null and o.expires_at is null then now()
           end
     where o.ctid = any(picked_ctids)
    returning o.id, o.priority, o.send_at, o.tenant, o.attempts,
              coalesce(o.max_attempts, default_max_attempts) as max_attempts,
              o.correlation_id, o.message, o.template, o.source_row,
              coalesce(o.expires_at <= now(), false) as expired,
              o.cancel_requested_at is not null as cancel_requested,
              o.id = any(ambiguous_ids) as ambiguous,
              o.send_started_at is not null as marked
  )
  select json_agg(json_build_array(c.id::text, c.tenant, c.attempts, c.max_attempts,
                    c.correlation_id, c.message, c.template, c.source_row, c.expired,
                    c.cancel_requested, c.ambiguous, c.marked and not c.ambiguous)
                  order by c.priority, c.send_at, c.id)
    into leases
    from claimed_rows c;
  return json_build_object('leases', leases, 'nextDueMs', next_due_ms);
end $$;
