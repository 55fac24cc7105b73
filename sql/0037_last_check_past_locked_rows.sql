-- 0037: the last check before a send without waiting long for a row another transaction holds.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- mailer.start_sends_unlocked. Why: mailer.start_sends (0021) updated the rows of a batch of last
-- checks in id order and waited for each lock. One row that another transaction held between its
-- claim and its check (an application keeping its UPDATE of the row's message open, anyone's
-- SELECT … FOR UPDATE) held up the check until that lock went or statement_timeout (30 s)
-- cancelled it; meanwhile every other last check of the worker queued behind it, and each row
-- waiting kept its process-wide send slot, so no send of any database of the process went out
-- (test/integration/last-check-faults.test.ts).
--
-- This one first runs start_sends' own statement with each lock wait cut to 50 ms, long enough
-- for a lock of our own (a heartbeat, the API's cancel: milliseconds), in a subtransaction. Only
-- when a wait runs out (lock_not_available; or a deadlock found first, when deadlock_timeout is set
-- below it) is that undone, its locks released, and the batch checked the slow way: the rows it
-- can lock at once are locked in id order (SKIP LOCKED: it never waits, so it cannot deadlock) and
-- checked, and those not locked that are still the caller's live leases come back `busy`, started,
-- cancelled and expired all false: not started, for the caller to give back (not sent). The slow
-- way's waits (a table lock only) are the caller's lock_timeout again. Same fence, plan settings
-- and privileges as start_sends; a row is `started` exactly as there.
--
-- Invariant: a statement that locks several outbox rows another may share locks them in id order
-- (the first statement: a merge join in id order, as 0021), or never waits.
-- Older binaries keep calling mailer.start_sends, which stays.
--! older-binaries-compatible
create function mailer.start_sends_unlocked(ids bigint[], tokens uuid[])
returns table (id bigint, started boolean, cancelled boolean, expired boolean, busy boolean)
language plpgsql volatile
set enable_seqscan = off
set enable_nestloop = off
set enable_hashjoin = off
set plan_cache_mode = force_generic_plan
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
