-- 0075: MAIL_FROM's owed probe's kept due time follows the rows that change it: a row scheduled sooner, the kept row gone.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: 0062 keeps in mailbox_pacing.probe_due_at when MAIL_FROM's first future row is due, so a
-- waiting worker's claim does not walk 100,000 other senders' future rows each time
-- (bench/probe-wait.ts). Nothing lowered it: a row of MAIL_FROM's enqueued with a sendAt sooner, one
-- an operator moved sooner by hand, or one given back sooner (a retry), and the claims answered the
-- kept time (probeInMs 119,800 ms for a row 3 s off: the worker slept past the row until its backstop
-- poll); the kept row cancelled or moved later, they still answered its time, and with nothing else
-- of MAIL_FROM's pending the probe stayed owed until then, rows naming MAIL_FROM's address held
-- (probe-due-cache.test.ts).
--
-- Now, while a probe is owed (a partial index of mailbox_pacing finds it: no key needed, which the
-- database does not know), a row of MAIL_FROM's (no sender key) enqueued for later writes its
-- send_at into mailer.probe_due_hints, in its own transaction: the claim reads the kept time
-- lowered by the earliest future hint. A hint commits with its row, so a claim whose
-- search ran before the row committed, and kept a later time, sees it at its next claim; no lock is
-- taken on the pacing row for it (an application's transaction that enqueues holds nothing the
-- workers' claims wait for). The kept time is the row's own send_at, and a claim reads it only while
-- a row of MAIL_FROM's is still pending at that time (one probe of email_outbox_claim_idx per
-- pending priority): the row cancelled, moved or rekeyed, the claim searches again. A claim that
-- searches deletes the hints spent or past what it found; one that finds nothing of MAIL_FROM's
-- pending owes no probe and deletes them all.
--
-- Not followed: a row moved sooner by an UPDATE (by hand, or given back sooner by a retry while the
-- probe is owed) waits for the backstop poll (POLL_INTERVAL_SECONDS), as before: an AFTER UPDATE
-- trigger, whatever its columns or WHEN, made every UPDATE of the outbox read one heap page more per
-- row, each claim and settlement of every row included (round 39, BENCHMARKS.md).
--
-- Cost: a row due at once (most enqueues) or of another sender runs no function (the trigger's
-- WHEN); no claim or settlement fires it. A scheduled row of MAIL_FROM's runs the function, which
-- reads the partial index (empty unless a probe is owed); owed, it inserts one hint. A waiting
-- claim reads the hints' index and the kept row's.
--
-- Older binaries: their statements read nothing of this; their enqueues fire the trigger as ours
-- do, and their claims call this function (signature and answer 0062's). The function runs with
-- its owner's rights (as 0059's): a role that enqueues needs no grant on mailbox_pacing or the hints.
--! older-binaries-compatible
create index if not exists mailbox_pacing_probe_owed_idx on mailer.mailbox_pacing (mailbox) where probe_owed;

create table if not exists mailer.probe_due_hints (
  send_at timestamptz not null
);
create index if not exists probe_due_hints_send_at_idx on mailer.probe_due_hints (send_at);

create or replace function mailer.probe_due_follows_rows() returns trigger language plpgsql
  security definer
  set search_path = pg_catalog, pg_temp set standard_conforming_strings = on as $$
begin
  -- No probe owed (mailbox_pacing_probe_owed_idx, empty then): nothing kept to follow.
  if not exists (select from mailer.mailbox_pacing p where p.probe_owed) then
    return null;
  end if;
  insert into mailer.probe_due_hints (send_at) values (new.send_at);
  return null;
end $$;
-- Never called directly (Postgres refuses a trigger function outside a trigger): no one needs it.
revoke execute on function mailer.probe_due_follows_rows() from public;

drop trigger if exists email_outbox_probe_due_insert on mailer.email_outbox;
create trigger email_outbox_probe_due_insert after insert on mailer.email_outbox
  for each row when (new.status = 'pending' and new.sender_key is null and new.send_at > now())
  execute function mailer.probe_due_follows_rows();

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
  pause_turn interval;
  paused_ms float8;
  probe_id bigint;
  probe_ctid tid;
  probe_ambiguous boolean;
  probe_in_ms float8;
  owed boolean;
  probe_out bigint;
  probe_due timestamptz;
  hinted timestamptz;
  probe_row bigint;
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
  select p.next_at, p.turn_interval, p.probe_owed, p.probe_id, p.probe_due_at
    into pause_end, pause_turn, owed, probe_out, probe_due
    from mailer.mailbox_pacing p where p.mailbox = paused_key;
  -- A pacing turn is no pause: next_at lies up to one turn_interval ahead (0: a throttle's).
  if pause_end > now() + greatest(hold, coalesce(pause_turn, interval '0')) then
    paused_ms := extract(epoch from pause_end - now()) * 1000;
  end if;
  if paused_ms is null and owed then
    -- One probe for every worker: taken under the pacing row's lock (a claim that waited for it
    -- reads the row as the winner left it); a probe row still sending is out.
    select p.probe_owed, p.probe_id, p.probe_due_at into owed, probe_out, probe_due
      from mailer.mailbox_pacing p where p.mailbox = paused_key for update;
    if owed and probe_out is not null
       and exists (select from mailer.email_outbox o where o.id = probe_out and o.status = 'sending') then
      -- Another claim's probe is out: MAIL_FROM's rows wait for its verdict; look again in a second.
      probe_in_ms := 1000;
    end if;
  end if;
  if paused_ms is null and probe_in_ms is null then
    -- The probe: MAIL_FROM's first due row in claim order (no sender key), over
    -- email_outbox_claim_idx.
    select o.id, o.ctid, o.send_started_at is not null
      into probe_id, probe_ctid, probe_ambiguous
      from mailer.email_outbox o
     where o.status = 'pending' and o.send_at <= now() and o.sender_key is null
     order by o.priority, o.send_at, o.id
     limit 1
     for update of o skip locked;
    if probe_id is not null and owed then
      -- Named for every claim (a variable of another name: the column's is probe_id too).
      probe_row := probe_id;
      update mailer.mailbox_pacing set probe_id = probe_row where mailbox = paused_key;
    end if;
    if probe_id is null then
      -- None due: the earliest of MAIL_FROM's pending rows, however far off (given back to the
      -- pause's end and settled late, or scheduled by their own sendAt). Owed, as an earlier claim
      -- found it, until that time comes.
      -- A row of MAIL_FROM's scheduled or moved sooner since (a hint, written with the row).
      hinted := (select min(h.send_at) from mailer.probe_due_hints h where h.send_at > now());
      -- The kept row still pending at that time (not cancelled, moved or rekeyed since): one probe
      -- of email_outbox_claim_idx per pending priority at that send_at. Else searched again.
      if owed and probe_due > now()
         and exists (select from mailer.email_outbox f
                      where f.status = 'pending' and f.sender_key is null and f.send_at = probe_due
                        and f.priority = any (array(
                              with recursive priorities(p) as (
                                (select o.priority from mailer.email_outbox o
                                  where o.status = 'pending' order by o.priority limit 1)
                                union all
                                select (select o.priority from mailer.email_outbox o
                                         where o.status = 'pending' and o.priority > q.p
                                         order by o.priority limit 1)
                                  from priorities q
                                 where q.p is not null
                              )
                              select q.p from priorities q where q.p is not null))) then
        probe_in_ms := extract(epoch from least(probe_due, hinted) - now()) * 1000;
      else
        -- One probe of email_outbox_claim_idx per pending priority, from now() on to its first
        -- row keyed NULL, past the rows of other senders scheduled before it.
        with recursive priorities(p) as (
          (select o.priority from mailer.email_outbox o
            where o.status = 'pending' order by o.priority limit 1)
          union all
          select (select o.priority from mailer.email_outbox o
                   where o.status = 'pending' and o.priority > q.p order by o.priority limit 1)
            from priorities q
           where q.p is not null
        )
        select min((select f.send_at from mailer.email_outbox f
                     where f.status = 'pending' and f.priority = q.p
                       and f.send_at > now()
                       and f.sender_key is null
                     order by f.send_at limit 1))
          into probe_due
          from priorities q
         where q.p is not null;
        -- The row's own send_at is kept, so a change of that row is found (a claim checks a row of
        -- MAIL_FROM's is still pending at it); a hint is not: its row may be uncommitted still, or gone.
        if owed and probe_due is not null then
          update mailer.mailbox_pacing set probe_due_at = probe_due where mailbox = paused_key;
        end if;
        -- Hints spent (their rows due, found above while pending, or gone) or at or past the time
        -- kept (which a change of its row clears): those between may name rows not committed when
        -- the search ran, and stay.
        delete from mailer.probe_due_hints h where h.send_at <= now() or h.send_at >= probe_due;
        -- None found: a hint's row is gone, or not committed yet (a pending row then, claimed as any).
        if probe_due is not null then
          probe_in_ms := extract(epoch from least(probe_due, hinted) - now()) * 1000;
        end if;
      end if;
      if probe_in_ms is null then
        -- Nothing of MAIL_FROM's pending at all: claim_batch of one row.
        -- Nothing to probe with: owed no more.
        update mailer.mailbox_pacing set probe_owed = false, probe_id = null, probe_due_at = null
         where mailbox = paused_key and probe_owed;
        delete from mailer.probe_due_hints;
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
                                  where q.mailbox = o.sender_key
                                    and q.next_at > now() + greatest(hold, coalesce(q.turn_interval, interval '0')))
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
