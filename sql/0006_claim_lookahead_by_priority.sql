-- 0006: a claim that comes up short finds the next scheduled row in O(priorities), not O(scheduled rows).
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: 0005's look-ahead took the minimum send_at over every pending row due later. The claim index
-- leads with priority, so that read every scheduled row's index entry: with 100,000 mails scheduled
-- for next week, each pickup's claim took 10.9 ms instead of 0.2. Now each priority in use costs one
-- index probe (there are at most 201 priorities, usually one or two).
--
-- Same signature and result as 0005 (see 0003 for the result's shape), so a binary of either
-- version works. Only the look-ahead differs from 0005; full claims (a drain) never run it.

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
