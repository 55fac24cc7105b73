-- 0057: a MAIL_FROM pause's end probe stays owed until one of MAIL_FROM's rows is due, however far off.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: 0051's mailer.claim_past_paused, the pause over and none of MAIL_FROM's rows due, waited
-- for the first of them only within the hold (5 s) past the pause's end. A row due later (given
-- back to that end by a settlement more than the hold late, as on a loaded machine, or scheduled
-- by its own sendAt) was out of that range: the claim was claim_batch of one row, the worker took
-- its probe for done, and claimed MAIL_FROM's rows in a batch as they came due, each sent to the
-- still refusing mailbox or given back again: 5 of 5 claimed where 1 is the bound
-- (sender-mailbox-refused.test.ts, rows due 6 s past the hold; rows scheduled an hour out).
-- Now the range has no end: the earliest pending row of MAIL_FROM's says when the probe comes
-- (probeInMs, folded into nextDueMs), and meanwhile the claim takes only rows naming a sender of
-- their own, as while the pause stands. Only when MAIL_FROM has no pending row at all is it
-- claim_batch of one row, as before. claim_batch itself is unchanged.
-- Cost: the search for that row reads email_outbox_claim_idx from now() per pending priority up to
-- its first row keyed NULL (MAIL_FROM's, the common case: the first entry); the rows of other
-- senders scheduled before it are read past. It runs only in claims of a worker that met the pause.
--
-- Older binaries: signature and answer are 0051's. One that reads probeInMs (0051's) stays paused
-- on it, as on 0051's, and probes with the row when due; one that predates 0051 reads pausedMs
-- null, takes a row claimed in it (another sender's) for its probe or, with none, goes back to its
-- usual claim, as it did against 0041; a binary that predates 0039 never calls it.
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
set search_path = pg_catalog, pg_temp
set standard_conforming_strings = on
as $$
declare
  hold interval := make_interval(secs => hold_ms / 1000);
  pause_end timestamptz;
  paused_ms float8;
  probe_id bigint;
  probe_ctid tid;
  probe_ambiguous boolean;
  probe_in_ms float8;
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
  select p.next_at into pause_end from mailer.mailbox_pacing p where p.mailbox = paused_key;
  if pause_end > now() + hold then
    paused_ms := extract(epoch from pause_end - now()) * 1000;
  end if;
  if paused_ms is null then
    -- The probe: MAIL_FROM's first due row in claim order (no sender key), over
    -- email_outbox_claim_idx.
    select o.id, o.ctid, o.send_started_at is not null
      into probe_id, probe_ctid, probe_ambiguous
      from mailer.email_outbox o
     where o.status = 'pending' and o.send_at <= now() and o.sender_key is null
     order by o.priority, o.send_at, o.id
     limit 1
     for update of o skip locked;
    if probe_id is null then
      -- None due: the earliest of MAIL_FROM's pending rows, however far off (given back to the
      -- pause's end and settled late, or scheduled by their own sendAt). One probe of
      -- email_outbox_claim_idx per pending priority, from now() on to its first row keyed NULL.
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
                                      where f.status = 'pending' and f.priority = q.p
                                        and f.send_at > now()
                                        and f.sender_key is null
                                      order by f.send_at limit 1)) - now()) * 1000
        into probe_in_ms
        from priorities q
       where q.p is not null;
      if probe_in_ms is null then
        -- Nothing of MAIL_FROM's pending at all: claim_batch of one row.
        return json_build_object('claim', mailer.claim_batch(1, worker, token, lease_seconds, mark_started,
                                                             default_max_attempts),
                                 'pausedMs', null, 'probeInMs', null);
      end if;
    else
      picked_ids := array[probe_id];
      picked_ctids := array[probe_ctid];
      if probe_ambiguous then
        ambiguous_ids := array[probe_id];
      end if;
    end if;
  end if;
  if probe_id is null then
    -- Standing, or the probe to come: as claim_batch, over the rows with a sender key only.
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
    -- The probe's row comes due then (least ignores a null).
    next_due_ms := least(next_due_ms, probe_in_ms);

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
                             'pausedMs', paused_ms, 'probeInMs', probe_in_ms);
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
                           'pausedMs', paused_ms, 'probeInMs', probe_in_ms);
end $$;
