-- 0162: a claim notes on the row whether it only looks an interrupted send up (lease_lookup_only), so that the reclaim of such a lease whose worker stopped counts no attempt.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: a claim that only looks a row's interrupted send up (or, lookups off, names it unresolved)
-- never sends and counts no attempt (src/outbox/lease.ts lookupOnly: past the row's max_attempts,
-- its cancel requested, or past its expiresAt, with the send's mark). The claim counts one like any
-- other; its settlement gives it back. When its worker stopped (SIGKILL, a lost machine) the
-- reclaim had to tell the kind from the row as it found it: past the max_attempts (attempts above
-- it) and a cancel's lookup (its cancel recorded with the mark) it could; past the expiresAt it
-- could not, as a counted claim taken before the expiresAt whose send started and whose lease ran
-- out after it leaves the same row. So the reclaim of such a lookup counted one: attempts n + 1 and
-- an entry numbered n + 1 for a lookup of attempt n's send, and on the row's last attempt it failed
-- the row out of attempts (`lease_expired`) instead of leaving it to be looked up or expired.
--
-- email_outbox.lease_lookup_only: written by every claim, in its own UPDATE (no statement or row
-- version of its own), from the locked row version the claim read (as the lease's `ambiguous`,
-- `expired`, `cancelRequested` and `pastAttempts`): true for a lease lookupOnly judges so, else
-- NULL, never false: a false (a byte in the claimed version, where the inserted one has none) cost
-- the claim's WAL record 10 bytes a row (bench/drain-turns.ts: 729 B/row against 719), NULL none.
-- Read by the reclaim only (coalesced to false), on a row whose lease ended; a settlement leaves it
-- (the next claim writes it again). NULL: a claim that counts, a lease taken before this migration
-- (the reclaim judges both as before), or a row never claimed. Nullable without a default: no
-- rewrite; in no index, like lease_expires_at: the claim's and the heartbeat's updates stay HOT.
--
-- mailer.claim_batch (0019), mailer.claim_notified (0137) and mailer.claim_past_paused (0157)
-- restated whole with that one assignment, every other line as there; same signatures, plan
-- settings and answers; 0050's search_path and standard_conforming_strings restated for
-- claim_batch (a replaced function keeps only the settings it lists). Their privileges, owners and
-- comments (0161) are kept by create or replace.
--
-- Older binaries call the claims by name and read the same answer; they never read the column,
-- and their reclaim counts such a lease as it did (during a rolling deploy an older machine's
-- reclaim of a lookup past the expiresAt still counts one). Not security definer.
--! older-binaries-compatible

alter table mailer.email_outbox add column if not exists lease_lookup_only boolean;

-- As 0019 (0050's pins restated), the claim noting lease_lookup_only.
create or replace function mailer.claim_batch(n integer, worker text, token uuid, lease_seconds float8,
                                              mark_started boolean, default_max_attempts integer)
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
  picked_ids bigint[] := '{}';
  picked_ctids tid[] := '{}';
  ambiguous_ids bigint[] := '{}';
  more_ids bigint[];
  more_ctids tid[];
  more_ambiguous bigint[];
  pending_priorities smallint[];
  prio smallint;
  leases json;
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
    -- ambiguous: the previous attempt began a send (read from the locked row version); such rows
    -- are rare, so they are listed by id and looked up in the update's result.
    select array_agg(c.id), array_agg(c.ctid), array_agg(c.id) filter (where c.ambiguous)
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
      ambiguous_ids := coalesce(more_ambiguous, '{}');
    else
      picked_ids := picked_ids || more_ids;
      picked_ctids := picked_ctids || more_ctids;
      ambiguous_ids := ambiguous_ids || coalesce(more_ambiguous, '{}');
    end if;
    exit when cardinality(picked_ids) >= n;
  end loop;

  -- Only a claim that came up short says when the next row is due.
  if cardinality(picked_ids) >= n then
    next_due_ms := null;
  end if;
  -- Nothing due (a drain's last claim, a backstop poll): no update to run.
  if cardinality(picked_ids) = 0 then
    return json_build_object('leases', '[]'::json, 'nextDueMs', next_due_ms);
  end if;

  -- We hold the row locks, so each row is still at its ctid (a statement in a volatile function
  -- sees rows committed before it began, including a version that the lock itself followed).
  -- A TID scan is the only access path left to this statement (no index covers ctid, sequential
  -- scans are off): it needs no setting switched around it, nor a join to the picked list.
  with claimed_rows as (
    update mailer.email_outbox o
       set status = 'sending',
           attempts = o.attempts + 1,
           lease_owner = worker,
           lease_token = token,
           lease_expires_at = now() + make_interval(secs => lease_seconds),
           -- Its kind (0162): a claim that only looks the row's interrupted send up (lease.ts lookupOnly).
           lease_lookup_only = case when o.send_started_at is not null
             and (coalesce(o.expires_at <= now(), false) or o.cancel_requested_at is not null
                  or o.attempts + 1 > coalesce(o.max_attempts, default_max_attempts)) then true end,
           -- An interrupted send's mark stays until it is resolved; a clean row may be marked now,
           -- unless it has an expiry: that is judged again by the last check, in its send slot.
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
  return json_build_object('leases', leases, 'nextDueMs', next_due_ms);
end $$;

-- As 0137, the claim noting lease_lookup_only.
create or replace function mailer.claim_notified(row_id bigint, worker text, token uuid, lease_seconds float8,
                                      mark_started boolean, default_max_attempts integer)
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
  leases json;
  unflushed text;
begin
  -- An assignment, not PERFORM: a simple expression, evaluated without a statement of its own.
  if not mark_started then
    unflushed := set_config('synchronous_commit', 'off', true);
  end if;
  -- The first pending entry of the claim index: one probe (an initplan), however many rows wait
  -- behind it; a row ahead of row_id, due or not, sends the caller to claim_batch.
  with picked as (
    select o.ctid, o.send_started_at is not null as ambiguous
      from mailer.email_outbox o
     where o.id = row_id and o.status = 'pending' and o.send_at <= now()
       and o.id = (select f.id from mailer.email_outbox f
                    where f.status = 'pending'
                    order by f.priority, f.send_at, f.id
                    limit 1)
       for update of o skip locked
  ), claimed_rows as (
    update mailer.email_outbox o
       set status = 'sending',
           attempts = o.attempts + 1,
           lease_owner = worker,
           lease_token = token,
           lease_expires_at = now() + make_interval(secs => lease_seconds),
           -- Its kind (0162): a claim that only looks the row's interrupted send up (lease.ts lookupOnly).
           lease_lookup_only = case when o.send_started_at is not null
             and (coalesce(o.expires_at <= now(), false) or o.cancel_requested_at is not null
                  or o.attempts + 1 > coalesce(o.max_attempts, default_max_attempts)) then true end,
           -- As in claim_batch: an interrupted send's mark stays; an expiry is judged in the slot.
           send_started_at = case
             when o.send_started_at is not null then o.send_started_at
             when mark_started and o.cancel_requested_at is null and o.expires_at is null then now()
           end
      from picked p
     where o.ctid = p.ctid
    returning o.id, o.tenant, o.attempts,
              coalesce(o.max_attempts, default_max_attempts) as max_attempts,
              o.correlation_id, o.message, o.template, o.source_row,
              coalesce(o.expires_at <= now(), false) as expired,
              o.cancel_requested_at is not null as cancel_requested,
              p.ambiguous,
              o.send_started_at is not null as marked
  )
  select json_agg(json_build_array(c.id::text, c.tenant, c.attempts, c.max_attempts,
                    c.correlation_id, c.message, c.template, c.source_row, c.expired,
                    c.cancel_requested, c.ambiguous, c.marked and not c.ambiguous))
    into leases
    from claimed_rows c;
  -- Not taken, and not pending any more: another worker took it (or it was cancelled, deleted, or
  -- never inserted: a trigger of the application's dropped it). It was all the news there was, so
  -- there is nothing for claim_batch to find: an empty array says so (each other worker that heard
  -- the same notification runs this one statement, not a claim_batch as well).
  -- Two IFs, not one AND: `leases is null` alone is a simple expression; the query runs only then.
  if leases is null then
    if not exists (select from mailer.email_outbox o where o.id = row_id and o.status = 'pending') then
      return '[]'::json;
    end if;
  end if;
  return leases;
end $$;

-- As 0157, the claim noting lease_lookup_only.
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
  throttled timestamptz;
  rate interval;
  ends timestamptz;
  paused_ms float8;
  owed boolean;
  probe_out bigint;
  probe_due timestamptz;
  searched_at timestamptz;
  deferred boolean;
  searched_none boolean := false;
  row_due boolean;
  probe_id bigint;
  probe_ctid tid;
  probe_ambiguous boolean;
  probe_in_ms float8;
  probe_row bigint;
  picked_ids bigint[] := '{}';
  picked_ctids tid[] := '{}';
  ambiguous_ids bigint[] := '{}';
  more_ids bigint[];
  more_ctids tid[];
  more_ambiguous bigint[];
  all_priorities smallint[];
  named_priorities smallint[];
  prio smallint;
  leases json;
  next_due_ms float8;
begin
  if not mark_started then
    perform set_config('synchronous_commit', 'off', true);
  end if;
  select p.next_at, p.turn_interval, p.throttled_until, p.probe_owed, p.probe_id, p.probe_due_at
    into pause_end, pause_turn, throttled, owed, probe_out, probe_due
    from mailer.mailbox_pacing p where p.mailbox = paused_key;
  -- The pause's end by the one rule every reader shares (pause_end: paused-now.ts's; the rate in
  -- force the newest worker's, 'pacing rate', 0 when none noted): a throttle within a turn counts
  -- (throttled_until), a turn to come does not. Read only while the row says something may hold.
  if pause_end > now() then
    rate := coalesce((select r.turn_interval from mailer.mailbox_pacing r where r.mailbox = 'pacing rate'),
                     interval '0');
    ends := mailer.pause_end(pause_end, pause_turn, throttled, rate);
  end if;
  if ends > now() + hold then
    paused_ms := mailer.ms_until(ends);
  elsif owed then
    -- One probe for every worker: taken under the pacing row's lock (a claim that waited for it
    -- reads the row as the winner left it); while another claim's probe is out, look again in 1 s.
    select p.probe_owed, p.probe_id, p.probe_due_at, p.probe_searched_at
      into owed, probe_out, probe_due, searched_at
      from mailer.mailbox_pacing p where p.mailbox = paused_key for update;
    if owed and mailer.probe_out_sending(probe_out) then
      probe_in_ms := 1000;
    elsif owed and mailer.probe_out_sent(probe_out) then
      -- Answered (Graph took it), its worker's answer not yet recorded: owed no more, for every
      -- claim, and no other row named. Invariant: probe_id is reset by every new pause (oweProbe).
      update mailer.mailbox_pacing set probe_owed = false, probe_id = null, probe_due_at = null
       where mailbox = paused_key;
      owed := false;
    end if;
  end if;
  -- Within a second of a full claim's search that found none of MAIL_FROM's rows due, while the
  -- kept time stands (in the future, its row pending at it, no hint come due): other senders' rows
  -- first, and a claim they fill skips the search. Invariant: a due row of MAIL_FROM's is searched
  -- for by the first claim a second past the last search, or by any claim that comes up short.
  deferred := false;
  if paused_ms is null and probe_in_ms is null and owed and probe_due > now()
     and searched_at > now() - interval '1 second' then
    -- Read only here: a claim outside the second reads no more than before.
    deferred := not mailer.probe_due_hint_passed() and mailer.mail_from_pending_at(probe_due);
  end if;
  <<choose>>
  loop
    if paused_ms is null and probe_in_ms is null and not deferred then
      -- The probe: MAIL_FROM's first due row (mail_from_probe_row), looked for once one is due.
      row_due := mailer.mail_from_row_due();
      if row_due then
        select p.id, p.row_ctid, p.ambiguous into probe_id, probe_ctid, probe_ambiguous
          from mailer.mail_from_probe_row() p;
      end if;
      searched_none := coalesce(owed, false) and not row_due;
      if probe_id is not null then
        -- MAIL_FROM's first due row probes.
      elsif row_due then
        -- Due, every such row held locked (a worker naming it as waiting, a give-back, an API
        -- action): look again in a second, the probe owed as it was, its kept time kept (0157).
        probe_in_ms := 1000;
      elsif owed and probe_due > now() and mailer.mail_from_pending_at(probe_due) then
        -- The kept row is still pending at its time; a row scheduled sooner since left a hint.
        probe_in_ms := extract(epoch from least(probe_due, mailer.probe_due_hinted()) - now()) * 1000;
      else
        -- None due: the earliest of MAIL_FROM's pending rows, however far off, searched.
        all_priorities := array(select p from mailer.pending_priorities(false) p);
        select f into probe_due from mailer.first_future_send_at(all_priorities, false) f;
        -- The row's own send_at is kept (a claim checks a row is still pending at it); a hint is not.
        if owed and probe_due is not null then
          update mailer.mailbox_pacing set probe_due_at = probe_due where mailbox = paused_key;
        end if;
        -- Hints spent, or at or past the time kept: those between may name rows not yet committed.
        delete from mailer.probe_due_hints h where h.send_at <= now() or h.send_at >= probe_due;
        if probe_due is null then
          -- Nothing of MAIL_FROM's pending at all: nothing to probe with, owed no more; claim_batch
          -- of one row.
          update mailer.mailbox_pacing set probe_owed = false, probe_id = null, probe_due_at = null
           where mailbox = paused_key and probe_owed;
          delete from mailer.probe_due_hints;
          return json_build_object('claim', mailer.claim_batch(1, worker, token, lease_seconds, mark_started,
                                                               default_max_attempts),
                                   'pausedMs', null, 'probeInMs', null);
        end if;
        probe_in_ms := extract(epoch from least(probe_due, mailer.probe_due_hinted()) - now()) * 1000;
      end if;
      if probe_id is null then
        -- Where the claim would wait: a row naming MAIL_FROM's own address probes instead.
        select p.id, p.row_ctid, p.ambiguous into probe_id, probe_ctid, probe_ambiguous
          from mailer.mail_from_address_probe_row(paused_key) p;
        if probe_id is null and mailer.mail_from_address_row_held(paused_key) then
          -- Such a row is there, held locked (a worker naming it as waiting, a give-back, an API
          -- action): this claim looks again in a second, not at MAIL_FROM's row's time (0146).
          probe_in_ms := least(probe_in_ms, 1000);
        end if;
      end if;
      if probe_id is not null then
        -- The probe alone: the worker holds every other claim until its answer.
        probe_in_ms := null;
        picked_ids := array[probe_id];
        picked_ctids := array[probe_ctid];
        ambiguous_ids := case when probe_ambiguous then array[probe_id] else '{}' end;
        if owed then
          -- Named for every claim (a variable of another name: the column's is probe_id too).
          probe_row := probe_id;
          update mailer.mailbox_pacing set probe_id = probe_row where mailbox = paused_key;
        end if;
      end if;
    end if;
    if probe_id is null then
      -- Standing, or the probe to come: as claim_batch, over the rows with a sender key only; the
      -- probe's row comes due at probe_in_ms (least ignores a null).
      named_priorities := array(select p from mailer.pending_priorities(true) p);
      if rate is null and cardinality(named_priorities) > 0 then
        rate := coalesce((select r.turn_interval from mailer.mailbox_pacing r where r.mailbox = 'pacing rate'),
                         interval '0');
      end if;
      select least(extract(epoch from f - now()) * 1000, probe_in_ms) into next_due_ms
        from mailer.first_future_send_at(named_priorities, true) f;
      foreach prio in array named_priorities loop
        -- A row naming MAIL_FROM's own address waits while the pause stands or the probe is out, as
        -- does one of another mailbox paused past the hold by the shared rule (pause_end; passed
        -- over here: rare, two mailboxes paused at once).
        select array_agg(c.id), array_agg(c.ctid), array_agg(c.id) filter (where c.ambiguous)
          into more_ids, more_ctids, more_ambiguous
          from (select o.id, o.ctid, o.send_started_at is not null as ambiguous
                  from mailer.email_outbox o
                 where o.status = 'pending' and o.sender_key is not null and o.priority = prio
                   and o.send_at <= now() and o.sender_key <> paused_key
                   and not exists (select from mailer.mailbox_pacing q
                                    where q.mailbox = o.sender_key
                                      and q.next_at > now()
                                      and mailer.pause_end(q.next_at, q.turn_interval, q.throttled_until, rate) > now() + hold)
                 order by o.send_at, o.id
                 limit n - cardinality(picked_ids)
                 for update of o skip locked) c;
        continue when more_ids is null;
        picked_ids := picked_ids || more_ids;
        picked_ctids := picked_ctids || more_ctids;
        ambiguous_ids := ambiguous_ids || coalesce(more_ambiguous, '{}');
        exit when cardinality(picked_ids) >= n;
      end loop;
    end if;
    exit choose when not deferred or cardinality(picked_ids) >= n;
    -- Short of the limit: the search after all (as cheap as the rows just read); the rows taken
    -- stay pending, locked until this claim commits.
    deferred := false;
    picked_ids := '{}';
    picked_ctids := '{}';
    ambiguous_ids := '{}';
  end loop;
  if deferred then
    -- Skipped: the kept time answered, as the search would have.
    probe_in_ms := extract(epoch from least(probe_due, mailer.probe_due_hinted()) - now()) * 1000;
  elsif searched_none and probe_id is null and cardinality(picked_ids) >= n then
    -- A full claim searched and found none due: the claims of the second after it need not.
    update mailer.mailbox_pacing set probe_searched_at = now() where mailbox = paused_key;
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
           -- Its kind (0162): a claim that only looks the row's interrupted send up (lease.ts lookupOnly).
           lease_lookup_only = case when o.send_started_at is not null
             and (coalesce(o.expires_at <= now(), false) or o.cancel_requested_at is not null
                  or o.attempts + 1 > coalesce(o.max_attempts, default_max_attempts)) then true end,
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
