-- 0062: a MAIL_FROM pause's end probe is owed by the database, not by one worker's memory.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: the probe owed after a pause lived in the memory of the worker that met the pause. A worker
-- restarted during it, or one that never met it, claimed MAIL_FROM's rows with claim_batch at its
-- end, a batch into a mailbox Graph had just throttled (2 and 3 sendMail where 1 is the bound:
-- probe-owed.test.ts); with several workers the bound was one probe per worker.
-- Now mailer.mailbox_pacing says so for every worker: probe_owed (set with a pause past the hold by
-- the worker that met it) and probe_id (the row out as the probe). A claim of a worker that knows
-- MAIL_FROM's key reads that row first (its primary key) and, owed or standing, claims nothing but
-- comes here. Here, the pause over and a probe owed, the first claim takes it under the pacing row's
-- lock and names its row; any other claim meanwhile takes only rows naming a sender of their own and
-- looks again in a second (probeInMs 1000). A probe row no longer sending (its worker died and the
-- row was reclaimed, or it settled and its verdict was not written) is out no more: the next claim
-- probes again. The verdict clears both columns (the probe done without meeting the pause), or a
-- new pause sets them again.
-- Cost: one primary-key read of mailer.mailbox_pacing per claim of a worker that met the pause, and
-- while a probe is out one of mailer.email_outbox. claim_batch itself is unchanged.
--
-- Older binaries: signature and answer are 0057's. One in its paused state honours a probe another
-- worker holds (probeInMs: it stays paused and looks again); one that takes the probe here never
-- writes its verdict, so the next claim after its probe row settles probes once more. Its usual
-- claim (claim_batch) reads none of this: a worker of an older binary that never met the pause
-- still claims MAIL_FROM's rows at its end as before. No column is read by an older binary's own
-- statements; its calls of this function keep and read probe_due_at as a new binary's do.
--
-- The search for MAIL_FROM's first row while its probe waits for it walks email_outbox_claim_idx
-- from now() past every other sender's row scheduled before it, each read from the heap for its
-- sender_key: 100,000 such rows cost each claim of a waiting worker 9,413 buffers and 32-58 ms
-- (bench/probe-wait.ts). Its answer is kept in probe_due_at: the claims until then read it, not
-- the index, so the search runs once per wait (again once that time has come and the row was not
-- due after all: cancelled, or edited). A row of MAIL_FROM's scheduled before it is still found
-- when due, by the search of due rows every claim makes. An index of MAIL_FROM's pending rows by
-- send_at made the search 2 buffers, but cost every enqueue and drain: Postgres CPU per row 44
-- against cb46720's 34 us, where without it 43 against 45.5 (bench/drain-turns.ts, paired, 3
-- drains of 20,000 each), so there is none.
--
-- A pacing turn is no pause: since 0061 every worker paces by the newest worker's
-- MAILBOX_RATE_PER_MINUTE, so a mailbox's next turn (next_at) may lie one interval of that rate
-- ahead, longer than the hold a worker of a faster rate passes (its own interval, or 5 s). Read as
-- a pause, a worker paused by MAIL_FROM's throttle took the turn at the pause's end (2 a minute
-- beside its 10) for the pause still standing, and passed over other senders' rows whose turn was
-- that far off (paced-turn-guard.test.ts). A pause counts past the hold or past the row's
-- turn_interval, whichever is longer (a throttle's is 0, a row an older binary wrote NULL); the
-- claims of an unpaused worker (claim.ts's guard) read it the same way.
--! older-binaries-compatible
alter table mailer.mailbox_pacing
  add column probe_owed boolean not null default false,
  add column probe_id bigint,
  add column probe_due_at timestamptz;

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
      if owed and probe_due > now() then
        probe_in_ms := extract(epoch from probe_due - now()) * 1000;
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
        select extract(epoch from min((select f.send_at from mailer.email_outbox f
                                        where f.status = 'pending' and f.priority = q.p
                                          and f.send_at > now()
                                          and f.sender_key is null
                                        order by f.send_at limit 1)) - now()) * 1000
          into probe_in_ms
          from priorities q
         where q.p is not null;
        if owed and probe_in_ms is not null then
          update mailer.mailbox_pacing
             set probe_due_at = now() + make_interval(secs => probe_in_ms / 1000)
           where mailbox = paused_key;
        end if;
      end if;
      if probe_in_ms is null then
        -- Nothing of MAIL_FROM's pending at all: claim_batch of one row.
        -- Nothing to probe with: owed no more.
        update mailer.mailbox_pacing set probe_owed = false, probe_id = null, probe_due_at = null
         where mailbox = paused_key and probe_owed;
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
