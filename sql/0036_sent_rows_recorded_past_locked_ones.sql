-- 0036: sends recorded as sent without waiting long for a row another transaction holds.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- mailer.mark_sent_unlocked. Why: mailer.mark_sent (0021) locked the rows of a batch of sent
-- messages in id order and waited. One row of the batch that another transaction held (an
-- application keeping its UPDATE of the row's message open, anyone's SELECT … FOR UPDATE) held up
-- the whole batch until that lock went or statement_timeout (30 s) cancelled it; the worker gave
-- the batch up after half a lease of failed tries (with the default lease, after that one try), its
-- leases ran out, and the rows, sent, were reclaimed as interrupted sends: sent again without a
-- mailbox lookup (policy resend), failed for review though sent (hold), or at best looked up
-- (test/integration/settle-locked-row.test.ts).
--
-- This one first runs mark_sent's own statement (one UPDATE … RETURNING and the history insert:
-- no lock record per row, the WAL of the common case) with each lock wait cut to 50 ms, long
-- enough for a lock of our own (a heartbeat, the expiry sweep: milliseconds), in a subtransaction.
-- Only when a wait runs out (lock_not_available; or a deadlock found first, when deadlock_timeout
-- is set below it) is that undone, its locks released, and the batch taken the slow way: the rows
-- it can lock at once are locked in id order (SKIP LOCKED: it never waits, so it cannot deadlock)
-- and recorded, and the others that are still the caller's leases are named `busy`, for the caller
-- to record once the lock goes (its lease stays its own: the heartbeat extends it, and a reclaim
-- skips a locked row). Only when it locked fewer rows than it was given (a lost lease, a busy row)
-- does it read them again to tell which. The slow way's waits (a table lock only) are the caller's
-- lock_timeout again. Same fence, history, plan settings and privileges as mark_sent; `sent` is
-- mark_sent's result.
--
-- Invariant: a statement that locks several outbox rows another may share locks them in id order
-- (the first statement: a merge join in id order, as 0021), or never waits.
-- Older binaries keep calling mailer.mark_sent, which stays.
--! older-binaries-compatible
create function mailer.mark_sent_unlocked(ids bigint[], tokens uuid[], started_ms float8[],
                                          http_statuses integer[], request_ids text[], worker text)
returns table (sent text, busy text)
language plpgsql volatile
set enable_seqscan = off
set enable_nestloop = off
set enable_hashjoin = off
set plan_cache_mode = force_generic_plan
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
           lease_owner = null, lease_token = null, lease_expires_at = null, send_started_at = null
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
