-- 0017: a claim that records its sends as started (file, discard) leaves rows with an expiresAt
-- to the last check before their send.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- mailer.claim_batch. Why: with mark_started the claim was the last check before a send, and its
-- rows then wait in the worker's local queue for a send slot (up to 50 per slot), for as long as
-- the sends ahead of them take, and heartbeats keep their leases: a row whose expires_at passed
-- while it waited was still sent, late, where the contract says it fails with code expired. Now
-- such a claim records as started only rows without an expiry; a row with one comes back not
-- started, and outbox-mailer from this release runs the last check (mailer.start_sends, in
-- database time) for it once it holds its send slot, right before the send, as the Graph path
-- does. Rows without an expiry are sent as before, with no statement more.
-- Binaries before this release run the last check for such a row right after the claim, before
-- its wait for a slot, as for a row with an interrupted send: the gap stays open for them, no wider.
-- Otherwise as in 0006: signature, result, locking, lease, plans and privileges.
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
set enable_nestloop = off
set enable_mergejoin = off
set plan_cache_mode = force_generic_plan
as $$
declare
  picked_ids bigint[] := '{}';
  picked_ctids tid[] := '{}';
  picked_ambiguous boolean[] := '{}';
  more_ids bigint[];
  more_ctids tid[];
  more_ambiguous boolean[];
  pending_priorities smallint[];
  prio smallint;
  leases json;
  claimed integer;
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
    -- ambiguous: the previous attempt began a send (read from the locked row version).
    select array_agg(c.id), array_agg(c.ctid), array_agg(c.ambiguous)
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
      picked_ambiguous := more_ambiguous;
    else
      picked_ids := picked_ids || more_ids;
      picked_ctids := picked_ctids || more_ctids;
      picked_ambiguous := picked_ambiguous || more_ambiguous;
    end if;
    exit when cardinality(picked_ids) >= n;
  end loop;

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
           -- An interrupted send's mark stays until it is resolved; a clean row may be marked now,
           -- unless it has an expiry: that is judged again by the last check, in its send slot.
           send_started_at = case
             when o.send_started_at is not null then o.send_started_at
             when mark_started and o.cancel_requested_at is null and o.expires_at is null then now()
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

  -- Only a claim that came up short says when the next row is due.
  if claimed >= n then
    next_due_ms := null;
  end if;
  return json_build_object('leases', leases, 'nextDueMs', next_due_ms);
end $$;
