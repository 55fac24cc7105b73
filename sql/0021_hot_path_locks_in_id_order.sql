-- 0021: the last check before sends and the settlement of sent rows lock their rows in id order.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- mailer.start_sends, mailer.mark_sent. Why: each hash-joined its input (unnest of ids and tokens)
-- to the probes of its rows, and an UPDATE locks rows in the order its join yields them. Which side
-- the generic plan hashed followed the statistics: when few rows are in 'sending' (a small outbox,
-- one never analyzed, or a large one with few sends in flight) it hashed the probes and walked the
-- input, locking in input order (the order sends asked for their check, or finished). The API's
-- bulk cancel, a worker's other settlements and (now) its heartbeat lock in id order; over the same
-- rows in opposite orders two statements wait for each other, and Postgres aborts one (40P01):
-- test/integration/lock-order.test.ts, 5 deadlocks in 5 rounds per pair before, none after.
-- Now hash joins are off as nested loops are, so the join is a merge join of the probes (in id
-- order: email_outbox_sending_idx's key) with the sorted input, and a merge join yields its rows in
-- the order of its key whatever the statistics. The input (at most 500 rows) is sorted where it was
-- hashed. Same signatures, results, fences and privileges.
--
-- Invariant: a statement that locks several outbox rows another may share locks them in id order.
--! older-binaries-compatible
create or replace function mailer.start_sends(ids bigint[], tokens uuid[])
returns table (id bigint, started boolean, cancelled boolean, expired boolean)
language plpgsql volatile
set enable_seqscan = off
set enable_nestloop = off
set enable_hashjoin = off
set plan_cache_mode = force_generic_plan
as $$
begin
  return query
  with checked as (
    update mailer.email_outbox o
       set send_started_at = case
             when o.cancel_requested_at is null and (o.expires_at is null or o.expires_at > now()) then now()
             else o.send_started_at
           end
      from unnest(ids, tokens) as i(id, token)
     where o.id = any(ids) and o.id = i.id and o.lease_token = i.token and o.status = 'sending'
       and o.lease_expires_at > now()
    returning o.id, o.cancel_requested_at is null and (o.expires_at is null or o.expires_at > now()) as started,
              o.cancel_requested_at is not null as cancelled,
              (o.expires_at is not null and o.expires_at <= now()) as expired
  )
  select c.id, c.started, c.cancelled, c.expired from checked c;
end $$;

create or replace function mailer.mark_sent(ids bigint[], tokens uuid[], started_ms float8[], http_statuses integer[],
                                            request_ids text[], worker text)
returns text
language plpgsql volatile
set enable_seqscan = off
set enable_nestloop = off
set enable_hashjoin = off
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
