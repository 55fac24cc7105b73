-- 0004: the drain's hot path as functions whose plans are cached per connection: claim_batch, mark_sent.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why functions: PL/pgSQL keeps each statement's plan for the session, so a claim or a settlement
-- is planned once per connection instead of once per call (about a millisecond of each pickup),
-- without server-side prepared statements, which transaction poolers do not all support.
-- Both always use that cached generic plan (plan_cache_mode = force_generic_plan): otherwise
-- PL/pgSQL plans each call anew whenever that looks cheaper (as for a claim of an empty array),
-- 0.2-0.3 ms of every pickup. Their planner settings pin the plans, so the generic one is safe.
--
-- mailer.claim_candidates (0003) stays: binaries released with 0003 call it until they are replaced.

-- Claims up to n due rows in claim order: status 'sending', attempts + 1, the claim's lease token,
-- a lease in database time. mark_started records the send as started in the claim itself
-- (open-gate transports), never for a row cancelled, expired or left ambiguous.
-- Returns {"leases": [[id, tenant, attempt, maxAttempts, correlationId, message, template,
-- sourceRow, expired, cancelRequested, ambiguous, started], ...], "nextDueMs": ms | null}, where
-- nextDueMs (ms until the earliest future send_at) is looked up only when fewer than n rows were due.
-- Invariant: a row is 'sending' only with a lease token and expiry; SKIP LOCKED keeps claimers disjoint.
--
-- Planner settings: the candidates are an ordered scan of email_outbox_claim_idx that stops after n
-- rows: statistics lag a burst of inserts (they may still say "no pending rows"), and the plan
-- otherwise chosen then, a bitmap scan and sort of every pending row, makes each claim O(backlog).
-- The update reaches the locked rows through their ctid (a TID scan hash-joined to the picked list;
-- enable_indexscan is switched off for that statement only, and a setting the function sets is
-- restored when it returns): joined by id instead, a generic plan made while the table was small
-- scanned the whole primary key, so a one-row claim read every page of a 20,000-row table.
-- The look-ahead probes the claim index once per priority in use (at most 201) instead of reading
-- every scheduled row's entry: with 100,000 rows scheduled for later, 0.23 ms per claim, not 10.9.
create function mailer.claim_batch(n integer, worker text, token uuid, lease_seconds float8,
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

  -- Only a claim that came up short looks for the next scheduled row (ms until it is due): the
  -- earliest future send_at of each priority that has pending rows, each found by one probe of
  -- email_outbox_claim_idx (priority, send_at, id), the priorities by a skip scan of the same index.
  if claimed < n then
    with recursive priorities(p) as (
      (select o.priority from mailer.email_outbox o
        where o.status = 'pending' order by o.priority limit 1)
      union all
      select (select o.priority from mailer.email_outbox o
               where o.status = 'pending' and o.priority > q.p order by o.priority limit 1)
        from priorities q
       where q.p is not null
    )
    select extract(epoch from min((select f.send_at from mailer.email_outbox f
                                     where f.status = 'pending' and f.priority = q.p and f.send_at > now()
                                     order by f.send_at limit 1)) - now()) * 1000
      into next_due_ms
      from priorities q
     where q.p is not null;
  end if;
  return json_build_object('leases', leases, 'nextDueMs', next_due_ms);
end $$;

-- Records successful sends (nearly every settlement) and their history: status 'sent', lease cleared.
-- Fenced per row by (id, lease_token, status = 'sending'); a lease missing from the returned ids
-- (comma-separated) was lost. Primary-key probes (= any) hashed against the input: linear in the
-- batch whatever the statistics, and in the generic plan PL/pgSQL caches (where a nested loop
-- over the input, estimated at a few rows, would be quadratic).
create function mailer.mark_sent(ids bigint[], tokens uuid[], started_ms float8[], http_statuses integer[],
                                 request_ids text[], worker text)
returns text
language plpgsql volatile
set enable_seqscan = off
set enable_nestloop = off
set plan_cache_mode = force_generic_plan
as $$
declare
  result text;
begin
  with done as (
    update mailer.email_outbox o
       set status = 'sent', sent_at = now(), last_error_code = null, last_error = null,
           lease_owner = null, lease_token = null, lease_expires_at = null, send_started_at = null
      from unnest(ids, tokens, started_ms, http_statuses, request_ids)
           as i(id, token, started, http_status, request_id)
     where o.id = any(ids) and o.id = i.id and o.lease_token = i.token and o.status = 'sending'
    returning o.id, o.attempts, i.started, i.http_status, i.request_id
  ), history as (
    insert into mailer.email_attempts (outbox_id, attempt, worker_id, started_at, outcome, http_status, request_id)
    select d.id, d.attempts, worker, to_timestamp(d.started / 1000), 'sent', d.http_status, d.request_id
      from done d
  )
  select string_agg(d.id::text, ',') into result from done d;
  return result;
end $$;

-- Send slots are now permanent rows, taken and freed by HOT updates (free: expires_at has passed),
-- instead of a row inserted and deleted per send, which left dead index entries for every taker.
comment on table mailer.send_slots is
  'One row per provider concurrency slot (1..GRAPH_MAX_CONCURRENCY); busy while expires_at is in the future.';
