-- 0157: a claim that finds MAIL_FROM's own due rows held locked looks again within a second, its probe still owed, not at its next row's time nor owed no more.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: claim_past_paused probes with MAIL_FROM's first due row without a sender key
-- (mail_from_probe_row, 0083), skip locked. Where every such due row was held by another
-- transaction at that moment, the claim read none due: it answered the time of MAIL_FROM's next
-- row (probeInMs, an hour out or more), or, none later, took the probe as owed no more and ran
-- claim_batch: MAIL_FROM was unpaused for every worker, and the next claims took its rows a batch
-- at a time, no probe first. Its own worker holds such rows thus: the naming of the rows a pause
-- holds back (waiting-rows.ts: up to 1,000 rows a statement, begun by a claim that found the pause
-- standing and not awaited) may still run when the pause ends; so do a give-back's and an API
-- action's statements. 0146 did the same for the rows naming MAIL_FROM's address.
--
-- Now the claim first reads whether such a row is due at all (mail_from_row_due, no lock asked),
-- and only then takes one skip locked; due but none free, it answers probeInMs 1 s (the rows
-- naming MAIL_FROM's address may probe meanwhile, as before), the probe stays owed, its kept time
-- as it was, and the search is not noted as done. claim_past_paused restated whole with that
-- test, every other line as 0151's; same signature and answer shape.
--
-- And the claim's check of the sender each keyed row names (its rows passed over while that
-- mailbox stands paused past the hold) read a pause by its own rule (mailbox_stands_paused, 0076:
-- next_at past now() + max(hold, turn_interval)), not the one status, the gauge, the gate and
-- MAIL_FROM's own read share (paused-now.ts): a throttle within a pacing turn went unread, its
-- rows claimed to be given back by the gate; a turn of a faster worker's queued past now held
-- nothing. Both now read mailer.pause_end (new: pauseEndText's expression, once in SQL) with the
-- rate in force, past the hold as before. mailbox_stands_paused stays, unused.
--
-- Cost: where none of MAIL_FROM's rows is due (the claims of a wait) the one read is the unlocked
-- one, the same scan of email_outbox_claim_idx the locked search made; where one is due (the
-- probe's claim, once per pause) two scans to that row. The rate row by primary key once per
-- walk over other senders' rows, where MAIL_FROM's row did not read it already. Nothing on the
-- hot path (claim_batch).
--
-- Older binaries: they call claim_past_paused by name and read probeInMs as this release does
-- (the due timer): theirs looks again in a second too. Not security definer.
--! older-binaries-compatible

-- When the pause holding a mailbox_pacing row (next_at, turn_interval, throttled_until) ends,
-- paced by `rate` (the newest worker's, 'pacing rate', interval '0' when none noted): a time not
-- after now(), or null, when none holds it. Invariant: pauseEndText's expression
-- (src/outbox/paused-now.ts; claim-past-paused-agrees.test.ts compares them). Inlined.
create or replace function mailer.pause_end(next_at timestamptz, turn_interval interval,
                                            throttled_until timestamptz, rate interval)
returns timestamptz language sql stable as $$
  select greatest(
    case when turn_interval = interval '0' then next_at end,
    case when throttled_until <= next_at then throttled_until end,
    case when turn_interval > interval '0' then case when next_at - turn_interval > now() then next_at - turn_interval + rate end
         when next_at > now() + rate then next_at end)
$$;

-- Whether a row of MAIL_FROM's own (no sender key) is due, locked or not (no lock asked): the
-- first in claim order over email_outbox_claim_idx. Invariant: its condition is mail_from_probe_row's.
create or replace function mailer.mail_from_row_due()
returns boolean language sql stable as $$
  select (select o.id from mailer.email_outbox o
           where o.status = 'pending' and o.send_at <= now() and o.sender_key is null
           order by o.priority, o.send_at, o.id
           limit 1) is not null
$$;

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
