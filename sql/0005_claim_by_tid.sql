-- 0005: the claim finds the rows it locked by their physical address, whatever the statistics say.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: PL/pgSQL keeps a statement's plan for the session. 0003's claim joined the locked rows back
-- to the table by id, and a plan made while the table was small (a young outbox, statistics not
-- yet refreshed) joined them against a scan of the whole primary key: a claim of one row read
-- every page of a table of 20,000 sent rows (20 ms). Now the update reaches each locked row
-- through its ctid (a TID scan, one page per row) and no other scan is allowed for it, and the
-- candidates are no longer a function of their own (a call with its own settings per claim).
--
-- Same signature and result as 0003's claim_batch (see there), so a binary of either version works.

-- Planner settings: the candidates are an ordered scan of email_outbox_claim_idx that stops after
-- n rows (no bitmap scan, sequential scan or sort of the backlog, see 0003); the update is a TID
-- scan hash-joined to the picked list (enable_indexscan is switched off for that statement only:
-- a setting the function itself sets is restored when it returns).
create or replace function mailer.claim_batch(n integer, worker text, token uuid, lease_seconds float8,
                                              mark_started boolean, default_max_attempts integer)
returns json
language plpgsql volatile
set enable_seqscan = off
set enable_bitmapscan = off
set enable_sort = off
set enable_indexscan = on
set enable_nestloop = off
set enable_mergejoin = off
set plan_cache_mode = force_generic_plan
as $$
declare
  picked_ids bigint[];
  picked_ctids tid[];
  picked_ambiguous boolean[];
  leases json;
  claimed integer;
  next_due_ms float8;
begin
  -- Claim order (priority, send_at, id) is the scan's order, kept by the aggregates.
  -- ambiguous: the previous attempt began a send (read from the locked row version).
  select array_agg(c.id), array_agg(c.ctid), array_agg(c.ambiguous)
    into picked_ids, picked_ctids, picked_ambiguous
    from (select o.id, o.ctid, o.send_started_at is not null as ambiguous
            from mailer.email_outbox o
           where o.status = 'pending' and o.send_at <= now()
           order by o.priority, o.send_at, o.id
           limit n
           for update skip locked) c;
  if picked_ids is null then
    picked_ids := '{}';
    picked_ctids := '{}';
    picked_ambiguous := '{}';
  end if;

  -- We hold the row locks, so each row is still at its ctid (a statement in a volatile function
  -- sees rows committed before it began, including a version that the lock itself followed).
  perform set_config('enable_indexscan', 'off', true);
  with claimed_rows as (
    update mailer.email_outbox o
       set status = 'sending',
           attempts = o.attempts + 1,
           lease_owner = worker,
           lease_token = token,
           lease_expires_at = now() + make_interval(secs => lease_seconds),
           -- An interrupted send's mark stays until it is resolved; a clean row may be marked now.
           send_started_at = case
             when o.send_started_at is not null then o.send_started_at
             when mark_started and o.cancel_requested_at is null
                  and (o.expires_at is null or o.expires_at > now()) then now()
           end
      from unnest(picked_ids, picked_ambiguous) with ordinality as p(id, ambiguous, ord)
     where o.ctid = any(picked_ctids) and o.id = p.id
    returning o.id, o.tenant, o.attempts, coalesce(o.max_attempts, default_max_attempts) as max_attempts,
              o.correlation_id, o.message, o.template, o.source_row,
              coalesce(o.expires_at <= now(), false) as expired,
              o.cancel_requested_at is not null as cancel_requested,
              p.ambiguous, o.send_started_at is not null and not p.ambiguous as started, p.ord
  )
  select coalesce(json_agg(json_build_array(c.id::text, c.tenant, c.attempts, c.max_attempts,
                    c.correlation_id, c.message, c.template, c.source_row, c.expired,
                    c.cancel_requested, c.ambiguous, c.started) order by c.ord), '[]'),
         count(*)
    into leases, claimed
    from claimed_rows c;
  perform set_config('enable_indexscan', 'on', true);

  -- Only a claim that came up short looks for the next scheduled row (ms until it is due).
  if claimed < n then
    select extract(epoch from min(f.send_at) - now()) * 1000
      into next_due_ms
      from mailer.email_outbox f
     where f.status = 'pending' and f.send_at > now();
  end if;
  return json_build_object('leases', leases, 'nextDueMs', next_due_ms);
end $$;

-- A plan built for the parameters of each call (PL/pgSQL's default for its first calls, and for
-- good whenever that looks cheaper than the generic plan, as a claim of an empty array does) costs
-- a planning per statement per call: 0.2-0.3 ms of every pickup. The plans are pinned above, so
-- the generic plan is the one wanted: claim_batch and mark_sent use it always.
alter function mailer.mark_sent(bigint[], uuid[], float8[], integer[], text[], text)
  set plan_cache_mode = force_generic_plan;

-- The candidates are part of claim_batch now.
drop function mailer.claim_candidates(integer);
