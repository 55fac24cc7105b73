-- 0041: a MAIL_FROM pause's end is probed by a row of MAIL_FROM's, not by the first row in claim order.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: with MAIL_FROM's pause over, 0039's mailer.claim_past_paused was claim_batch for one row:
-- the first in claim order, which may name a sender of its own (its sender_key). That row went,
-- the worker took the probe for done, and its next claim took a full batch of MAIL_FROM's rows;
-- with the mailbox still refused, a batch was claimed and given back per pause (8 of 20 rows in
-- sender-mailbox-refused.test.ts, where 1 is the bound). Now the pause over, the probe is the
-- first due row with no sender key (MAIL_FROM's), in claim order, SKIP LOCKED; when none is due
-- there is nothing of MAIL_FROM's to probe, and it is claim_batch of one row, as before. While
-- the pause stands the function is unchanged: rows naming other senders are claimed as before.
--
-- Older binaries: the signature and result are 0039's; a binary that predates 0039 never calls it.
--! older-binaries-compatible
create or replace function mailer.claim_past_paused(n integer, worker text, token uuid, lease_seconds float8,
                                                    mark_started boolean, default_max_attempts integer,
                                                    paused_key text, hold_ms float8)
returns json
language plpgsql volatile
set enable_seqscan = off
set enable_bitmapscan = off
set enable_sort = off
set enable_indexscan = on
set plan_cache_mode = force_generic_plan
as $$
declare
  hold interval := make_interval(secs => hold_ms / 1000);
  paused_ms float8;
  probe_id bigint;
  probe_ctid tid;
  probe_ambiguous boolean;
  picked_ids bigint[] := '{}';
  picked_ctids tid[] := '{}';
  ambiguous_ids bigint[] := '{}';
  more_ids bigint[];
  more_ctids tid[];
  more_ambiguous bigint[];
  named_priorities smallint[];
  prio smallint;
  leases json;
  next_due_ms float8;
begin
  if not mark_started then
    perform set_config('synchronous_commit', 'off', true);
  end if;
  select extract(epoch from p.next_at - now()) * 1000 into paused_ms
    from mailer.mailbox_pacing p
   where p.mailbox = paused_key and p.next_at > now() + hold;
  if paused_ms is null then
    -- The probe: MAIL_FROM's first due row in claim order (no sender key), over
    -- email_outbox_claim_idx; none due, nothing of MAIL_FROM's to probe: claim_batch of one row.
    select o.id, o.ctid, o.send_started_at is not null
      into probe_id, probe_ctid, probe_ambiguous
      from mailer.email_outbox o
     where o.status = 'pending' and o.send_at <= now() and o.sender_key is null
     order by o.priority, o.send_at, o.id
     limit 1
     for update of o skip locked;
    if probe_id is null then
      return json_build_object('claim', mailer.claim_batch(1, worker, token, lease_seconds, mark_started,
                                                           default_max_attempts),
                               'pausedMs', null);
    end if;
    picked_ids := array[probe_id];
    picked_ctids := array[probe_ctid];
    if probe_ambiguous then
      ambiguous_ids := array[probe_id];
    end if;
  else
    -- Standing: as claim_batch, over the rows with a sender key only.
    with recursive priorities(p) as (
      (select o.priority from mailer.email_outbox o
        where o.status = 'pending' and o.sender_key is not null order by o.priority limit 1)
      union all
      select (select o.priority from mailer.email_outbox o
               where o.status = 'pending' and o.sender_key is not null and o.priority > q.p
               order by o.priority limit 1)
        from priorities q
       where q.p is not null
    )
    select coalesce(array_agg(q.p), '{}'),
           extract(epoch from min((select f.send_at from mailer.email_outbox f
                                    where f.status = 'pending' and f.sender_key is not null
                                      and f.priority = q.p and f.send_at > now()
                                    order by f.send_at limit 1)) - now()) * 1000
      into named_priorities, next_due_ms
      from priorities q
     where q.p is not null;

    foreach prio in array named_priorities loop
      -- A row naming MAIL_FROM's own address waits with the rest, as does one of another paused
      -- mailbox (passed over here: rare, two mailboxes paused at once).
      select array_agg(c.id), array_agg(c.ctid), array_agg(c.id) filter (where c.ambiguous)
        into more_ids, more_ctids, more_ambiguous
        from (select o.id, o.ctid, o.send_started_at is not null as ambiguous
                from mailer.email_outbox o
               where o.status = 'pending' and o.sender_key is not null and o.priority = prio
                 and o.send_at <= now() and o.sender_key <> paused_key
                 and not exists (select from mailer.mailbox_pacing q
                                  where q.mailbox = o.sender_key and q.next_at > now() + hold)
               order by o.send_at, o.id
               limit n - cardinality(picked_ids)
               for update of o skip locked) c;
      if more_ids is null then
        continue;
      end if;
      picked_ids := picked_ids || more_ids;
      picked_ctids := picked_ctids || more_ctids;
      ambiguous_ids := ambiguous_ids || coalesce(more_ambiguous, '{}');
      exit when cardinality(picked_ids) >= n;
    end loop;
  end if;

  if cardinality(picked_ids) >= n then
    next_due_ms := null;
  end if;
  if cardinality(picked_ids) = 0 then
    return json_build_object('claim', json_build_object('leases', '[]'::json, 'nextDueMs', next_due_ms),
                             'pausedMs', paused_ms);
  end if;

  with claimed_rows as (
    update mailer.email_outbox o
       set status = 'sending',
           attempts = o.attempts + 1,
           lease_owner = worker,
           lease_token = token,
           lease_expires_at = now() + make_interval(secs => lease_seconds),
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
  return json_build_object('claim', json_build_object('leases', leases, 'nextDueMs', next_due_ms),
                           'pausedMs', paused_ms);
end $$;
