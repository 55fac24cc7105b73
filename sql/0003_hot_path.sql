-- 0003: the drain's hot path as functions: claims pinned to an ordered index scan, plans cached.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why functions: PL/pgSQL keeps each statement's plan for the session, so a claim or a settlement
-- is planned once per connection instead of once per call (about a millisecond of each pickup),
-- without server-side prepared statements, which transaction poolers do not all support.

-- The due rows a claim takes, in claim order (priority, send_at, id), locked with SKIP LOCKED;
-- ambiguous: the previous attempt began a send (read from the locked row version).
-- The planner settings pin this to an ordered scan of email_outbox_claim_idx that stops after n
-- rows. Statistics lag a burst of inserts (they may still say "no pending rows"), and the plan
-- otherwise chosen then, a bitmap scan and sort of every pending row, makes each claim cost O(backlog).
create function mailer.claim_candidates(n integer)
returns table (id bigint, ambiguous boolean)
language plpgsql volatile rows 500
set enable_bitmapscan = off
set enable_seqscan = off
set enable_sort = off
as $$
begin
  return query
    select o.id, o.send_started_at is not null
      from mailer.email_outbox o
     where o.status = 'pending' and o.send_at <= now()
     order by o.priority, o.send_at, o.id
     limit n
     for update skip locked;
end $$;

-- Claims up to n due rows in claim order: status 'sending', attempts + 1, the claim's lease token,
-- a lease in database time. mark_started records the send as started in the claim itself
-- (open-gate transports), never for a row cancelled, expired or left ambiguous.
-- Returns {"leases": [[id, tenant, attempt, maxAttempts, correlationId, message, template,
-- sourceRow, expired, cancelRequested, ambiguous, started], ...], "nextDueMs": ms | null}, where
-- nextDueMs (ms until the earliest future send_at) is looked up only when fewer than n rows were due.
-- Invariant: a row is 'sending' only with a lease token and expiry; SKIP LOCKED keeps claimers disjoint.
-- The update probes the primary key once per claimed row (a nested loop): the planner settings keep
-- it so whatever the statistics say, including in the generic plan PL/pgSQL caches (a hash join
-- would read the whole table to find a few rows).
create function mailer.claim_batch(n integer, worker text, token uuid, lease_seconds float8,
                                   mark_started boolean, default_max_attempts integer)
returns json
language plpgsql volatile
set enable_seqscan = off
set enable_hashjoin = off
set enable_mergejoin = off
as $$
declare
  result json;
begin
  with picked as (
    select c.id, c.ambiguous, row_number() over () as ord from mailer.claim_candidates(n) c
  ), claimed as (
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
      from picked p
     where o.id = p.id
    returning o.id, o.tenant, o.attempts, coalesce(o.max_attempts, default_max_attempts) as max_attempts,
              o.correlation_id, o.message, o.template, o.source_row,
              coalesce(o.expires_at <= now(), false) as expired,
              o.cancel_requested_at is not null as cancel_requested,
              p.ambiguous, o.send_started_at is not null and not p.ambiguous as started, p.ord
  )
  select json_build_object(
           'leases', coalesce(json_agg(json_build_array(c.id::text, c.tenant, c.attempts, c.max_attempts,
                       c.correlation_id, c.message, c.template, c.source_row, c.expired,
                       c.cancel_requested, c.ambiguous, c.started) order by c.ord), '[]'),
           -- An init plan, evaluated only when the case reaches it.
           'nextDueMs', case when count(*) < n then
             (select extract(epoch from min(f.send_at) - now()) * 1000 from mailer.email_outbox f
               where f.status = 'pending' and f.send_at > now())::float8 end)
    into result
    from claimed c;
  return result;
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
