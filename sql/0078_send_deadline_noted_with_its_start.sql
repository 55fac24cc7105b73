-- 0078: a send's deadline (its start plus the sending worker's request timeout) noted on the row by the last check that records the start.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: the lookup of a send a crash interrupted trusts "not found" a grace after that send's
-- deadline. 0070 took the sender's timeout from its registry entry, the entry named by the first
-- history entry after the start: for a crash, the reclaim, which names whoever holds the row's
-- lease key by then. A worker whose entry was lost keeps claiming under its key until its next
-- beat finds another worker drew it (round 38's redraw), and a row so claimed (or claimed before,
-- waiting in its queue) may start its send after that draw: the reclaim names the other worker,
-- whose entry predates the start, and its shorter timeout ended the grace before the crashed
-- request's own deadline had passed: the message went twice
-- (test/integration/sender-timeout-grace.test.ts).
--
-- email_outbox.send_deadline_at: send_started_at plus the request timeout of the process whose
-- last check wrote that start, in the same UPDATE (no statement or row version of its own), read by
-- the lookup only when later than send_started_at (one written with that start). NULL for a start
-- an older binary or a file transport's claim recorded. The settlement that clears
-- send_started_at clears it too, and keeps it where it keeps the start (an interrupted send's mark).
-- Nullable without a default: no rewrite, no index covers it (the updates stay HOT).
--
-- mailer.start_sends_with_deadline: mailer.start_sends_unlocked (0037) writing the deadline with
-- the start (timeout_seconds NULL: none); same fence, plan settings, lock waits and answers, and
-- 0050's search_path and standard_conforming_strings.
-- mailer.mark_sent_unlocked (0036) clears it with send_started_at, as the settlement of a row sent
-- did its start: a sent row's version carries no deadline (noted and kept, the drain's rows cost
-- 32 B of WAL each more than without, cleared here 16: bench/deadline-wal.ts). Older binaries
-- calling it get the same; otherwise as in 0036, its privileges and owner kept, and restates
-- 0050's search_path and standard_conforming_strings (a replaced function keeps only its own).
--
-- Older binaries never read the column and keep calling mailer.start_sends_unlocked, which stays:
-- their starts leave it as it was, which the lookup tells from a noted one by its being no later
-- than the start, and they clear no deadline when they settle. Both run side by side during a
-- rolling deploy; a send by an older binary is looked up by the rule it had (an unknown sender's).
--! older-binaries-compatible

alter table mailer.email_outbox add column if not exists send_deadline_at timestamptz;

create function mailer.start_sends_with_deadline(ids bigint[], tokens uuid[], timeout_seconds float8)
returns table (id bigint, started boolean, cancelled boolean, expired boolean, busy boolean)
language plpgsql volatile
set enable_seqscan = off
set enable_nestloop = off
set enable_hashjoin = off
set plan_cache_mode = force_generic_plan
set search_path = pg_catalog, pg_temp
set standard_conforming_strings = on
as $$
declare
  callers_lock_timeout text := current_setting('lock_timeout');
  checked_ids bigint[];
  started_flags boolean[];
  cancelled_flags boolean[];
  expired_flags boolean[];
begin
  begin
    -- Undone with the subtransaction when a wait runs out: the slow way waits as the caller does.
    perform set_config('lock_timeout', '50ms', true);
    with checked as (
      update mailer.email_outbox o
         set send_started_at = case
               when o.cancel_requested_at is null and (o.expires_at is null or o.expires_at > now()) then now()
               else o.send_started_at
             end,
             send_deadline_at = case
               when o.cancel_requested_at is null and (o.expires_at is null or o.expires_at > now())
               then now() + make_interval(secs => timeout_seconds)
               else o.send_deadline_at
             end
        from unnest(ids, tokens) as i(id, token)
       where o.id = any(ids) and o.id = i.id and o.lease_token = i.token and o.status = 'sending'
         and o.lease_expires_at > now()
      returning o.id, o.cancel_requested_at is null and (o.expires_at is null or o.expires_at > now()) as started,
                o.cancel_requested_at is not null as cancelled,
                (o.expires_at is not null and o.expires_at <= now()) as expired
    )
    -- Gathered whole before any row is returned: a wait that runs out midway returns none.
    select array_agg(c.id), array_agg(c.started), array_agg(c.cancelled), array_agg(c.expired)
      into checked_ids, started_flags, cancelled_flags, expired_flags
      from checked c;
    perform set_config('lock_timeout', callers_lock_timeout, true);
  exception when lock_not_available or deadlock_detected then
    -- Nothing of the batch was written; the rows it had locked are free again.
    return query
    with input as (
      select * from unnest(ids, tokens) as i(id, token)
    ), locked as materialized (
      select o.id from mailer.email_outbox o join input i on o.id = i.id and o.lease_token = i.token
       where o.id = any(ids) and o.status = 'sending' and o.lease_expires_at > now()
       order by o.id
         for no key update of o skip locked
    ), checked as (
      update mailer.email_outbox o
         set send_started_at = case
               when o.cancel_requested_at is null and (o.expires_at is null or o.expires_at > now()) then now()
               else o.send_started_at
             end,
             send_deadline_at = case
               when o.cancel_requested_at is null and (o.expires_at is null or o.expires_at > now())
               then now() + make_interval(secs => timeout_seconds)
               else o.send_deadline_at
             end
        from input i
       where o.id = any(array(select l.id from locked l)) and o.id = i.id and o.lease_token = i.token
         and o.status = 'sending' and o.lease_expires_at > now()
      returning o.id, o.cancel_requested_at is null and (o.expires_at is null or o.expires_at > now()) as started,
                o.cancel_requested_at is not null as cancelled,
                (o.expires_at is not null and o.expires_at <= now()) as expired
    )
    select c.id, c.started, c.cancelled, c.expired, false from checked c
    union all
    -- Still the caller's live lease when this statement began, but held by another transaction.
    select o.id, false, false, false, true
      from mailer.email_outbox o join input i on o.id = i.id and o.lease_token = i.token
     where o.id = any(ids) and o.status = 'sending' and o.lease_expires_at > now()
       and o.id <> all(array(select l.id from locked l));
    return;
  end;
  return query
  select c.id, c.started, c.cancelled, c.expired, false
    from unnest(checked_ids, started_flags, cancelled_flags, expired_flags)
         as c(id, started, cancelled, expired);
end $$;

create or replace function mailer.mark_sent_unlocked(ids bigint[], tokens uuid[], started_ms float8[],
                                          http_statuses integer[], request_ids text[], worker text)
returns table (sent text, busy text)
language plpgsql volatile
set enable_seqscan = off
set enable_nestloop = off
set enable_hashjoin = off
set plan_cache_mode = force_generic_plan
set search_path = pg_catalog, pg_temp
set standard_conforming_strings = on
as $$
declare
  callers_lock_timeout text := current_setting('lock_timeout');
  locked_ids bigint[];
  sent_ids text;
  busy_ids text;
begin
  begin
    -- Undone with the subtransaction when a wait runs out: the slow way waits as the caller does.
    perform set_config('lock_timeout', '50ms', true);
    with done as (
      update mailer.email_outbox o
         set status = 'sent', sent_at = now(), last_error_code = null, last_error = null,
             lease_owner = null, lease_token = null, lease_expires_at = null, send_started_at = null,
             send_deadline_at = null
        from unnest(ids, tokens, started_ms, http_statuses, request_ids)
             as i(id, token, started, http_status, request_id)
       where o.id = any(ids) and o.id = i.id and o.lease_token = i.token and o.status = 'sending'
      returning o.id, o.attempts, i.started, i.http_status, i.request_id
    ), history as (
      insert into mailer.email_attempts (outbox_id, attempt, worker_id, started_at, outcome, http_status, request_id)
      select d.id, d.attempts, worker, to_timestamp(d.started / 1000), 'sent', d.http_status, d.request_id
        from done d
    )
    select string_agg(d.id::text, ',') into sent_ids from done d;
    perform set_config('lock_timeout', callers_lock_timeout, true);
    return query select sent_ids, null::text;
    return;
  exception when lock_not_available or deadlock_detected then
    -- Nothing of the batch was written; the rows it had locked are free again.
  end;

  with input as (
    select * from unnest(ids, tokens, started_ms, http_statuses, request_ids)
                  as i(id, token, started, http_status, request_id)
  ), locked as materialized (
    select o.id from mailer.email_outbox o join input i on o.id = i.id and o.lease_token = i.token
     where o.id = any(ids) and o.status = 'sending'
     order by o.id
       for update of o skip locked
  ), done as (
    update mailer.email_outbox o
       set status = 'sent', sent_at = now(), last_error_code = null, last_error = null,
           lease_owner = null, lease_token = null, lease_expires_at = null, send_started_at = null,
           send_deadline_at = null
      from input i
     where o.id = any(array(select l.id from locked l)) and o.id = i.id and o.lease_token = i.token
       and o.status = 'sending'
    returning o.id, o.attempts, i.started, i.http_status, i.request_id
  ), history as (
    insert into mailer.email_attempts (outbox_id, attempt, worker_id, started_at, outcome, http_status, request_id)
    select d.id, d.attempts, worker, to_timestamp(d.started / 1000), 'sent', d.http_status, d.request_id
      from done d
  )
  select array(select l.id from locked l), (select string_agg(d.id::text, ',') from done d)
    into locked_ids, sent_ids;
  -- Rows not locked above (rare: lost, or held by another transaction): those the caller still
  -- held when this statement began are busy, not lost.
  if cardinality(locked_ids) < cardinality(ids) then
    select string_agg(o.id::text, ',') into busy_ids
      from mailer.email_outbox o join unnest(ids, tokens) as i(id, token)
           on o.id = i.id and o.lease_token = i.token
     where o.id = any(ids) and o.status = 'sending' and o.id <> all(locked_ids);
  end if;
  return query select sent_ids, busy_ids;
end $$;
