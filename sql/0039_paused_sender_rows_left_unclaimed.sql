-- 0039: each row's sender mailbox as a key, so that a claim can leave MAIL_FROM's rows unclaimed while it stands paused.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: a sender mailbox Graph refuses (MAIL_FROM answering 404) is paused 5 minutes at a time,
-- and every row due for it meanwhile was claimed and given back unsent (mailbox_paused) to the
-- pause's end, where all of them were due again: 2 row updates and 930 B of WAL per row per pause,
-- linear in the backlog (bench/paused-mailbox.ts, BENCHMARKS.md round 32), for up to a day. The
-- claim could not tell those rows from others: a row's sender is its message's from, its
-- template's from_address, or (neither) MAIL_FROM, which the database does not know.
--
-- email_outbox.sender_key: the row's sender mailbox as the send gate keys a mailbox (the address,
-- trimmed, lower case); NULL for a row that names none (MAIL_FROM's, the common case); '?' when
-- only its rendering can say (a from_address with placeholders, anything unreadable): such a row
-- is never left out. Written by a BEFORE trigger from the message or the template, so rows that
-- enqueue_email, enqueue_from_row, older binaries or hand-written SQL insert all get it; its WHEN
-- calls nothing for a row that names no sender (no template, no message.from), so MAIL_FROM's rows
-- pay one jsonb key test at insert and nothing more. Only inserts: a BEFORE UPDATE row trigger
-- locks every row an UPDATE writes before its column list is even read (+56 B of WAL per row of
-- mark_sent_unlocked, which takes no lock first: bench/statement-cost.ts), and an AFTER one reads
-- each row's old version; so a row whose message or template is changed by hand (or whose
-- template's from_address is changed later) keeps the key it was queued with, unless the UPDATE
-- sets sender_key = mailer.row_sender_key(message, template) too. Such a row may wait out a pause
-- of the mailbox it was queued for, or be given back for its own mailbox's, as before; never lost.
--
-- mailer.claim_past_paused: what a worker claims with while it knows MAIL_FROM paused (it met a
-- row given back for that pause). It reads the pause itself, in database time: still standing
-- (longer than hold_ms ahead, as a row would be given back for it), it claims only rows that name
-- a sender of their own, not a paused one, through email_outbox_named_sender_idx (rows with a
-- sender key only, none at all when every row uses MAIL_FROM) in claim order, as claim_batch does
-- over email_outbox_claim_idx, and says how long the pause lasts; over, it is claim_batch for one
-- row: the row that probes the mailbox (the worker claims as usual once that row is done), so a
-- pause's end that finds the mailbox still refused costs one row, not a batch of give-backs (nor,
-- under MAILBOX_RATE_PER_MINUTE, a run of rows sent back to pacing turns while the probe waits for
-- its turn). So a paused MAIL_FROM's backlog is neither claimed, nor updated, nor recorded while
-- the pause stands.
--
-- Older binaries: the column is nullable without a default (no rewrite), they never read it, and
-- the trigger fills it on their inserts too; the index and functions are invisible to them. They
-- keep claiming paused rows and giving them back, as before. The backfill below keys the rows
-- that may still be sent (every status but sent). Built CONCURRENTLY, as 0022, so no statement
-- here holds writes back for long; each statement may run again after a failed migrate.
--! no-transaction
--! older-binaries-compatible
alter table mailer.email_outbox add column if not exists sender_key text;
--! split
-- An address as the send gate keys its mailbox: the one in <…> of "Name <address>", else the
-- whole text; trimmed, lower case; NULL when empty.
create or replace function mailer.address_key(a text) returns text language sql immutable as $$
  select nullif(lower(btrim(coalesce((regexp_match(a, '<([^<>]*)>\s*$'))[1], a))), '')
$$;
--! split
-- A row's sender key (see above) from its message or its template, as renderLease picks the sender.
create or replace function mailer.row_sender_key(message jsonb, template_name text) returns text
language plpgsql stable as $$
declare
  f jsonb;
  t text;
begin
  if template_name is not null then
    select from_address into t from mailer.templates where name = template_name;
    -- None, or one that renders to no address (a name before an empty <>): MAIL_FROM.
    if t is null or t ~ '^(?:[^<>]*<\s*>)?\s*$' then return null; end if;
    if strpos(t, '{{') > 0 then return '?'; end if;
    return coalesce(mailer.address_key(t), '?');
  end if;
  f := message -> 'from';
  if f is null or jsonb_typeof(f) = 'null' then return null; end if;
  if jsonb_typeof(f) = 'object' then return coalesce(mailer.address_key(f ->> 'address'), '?'); end if;
  if jsonb_typeof(f) = 'string' then return coalesce(mailer.address_key(f #>> '{}'), '?'); end if;
  return '?';
end $$;
--! split
create or replace function mailer.note_sender_key() returns trigger language plpgsql as $$
begin
  new.sender_key := mailer.row_sender_key(new.message, new.template);
  return new;
end $$;
--! split
drop trigger if exists email_outbox_sender_key_insert on mailer.email_outbox;
--! split
create trigger email_outbox_sender_key_insert before insert on mailer.email_outbox
  for each row
  when (new.template is not null or new.message ? 'from')
  execute function mailer.note_sender_key();
--! split
update mailer.email_outbox
   set sender_key = mailer.row_sender_key(message, template)
 where status <> 'sent' and sender_key is null and (template is not null or message ? 'from');
--! split
drop index concurrently if exists mailer.email_outbox_named_sender_idx;
--! split
-- The pending rows that name a sender of their own, in claim order: empty when all use MAIL_FROM.
create index concurrently email_outbox_named_sender_idx
  on mailer.email_outbox (priority, send_at, id)
  where status = 'pending' and sender_key is not null;
--! split
-- As mailer.claim_batch (0019): same lease, mark, look-ahead and result, wrapped as
-- {"claim": <claim_batch's result>, "pausedMs": <ms the pause of paused_key still lasts, or null>};
-- with the pause over, claim_batch of one row (pausedMs null).
-- Without mark_started, its commit does not wait for its WAL flush (as claim_unflushed, 0007).
-- Invariant: a row is 'sending' only with a lease token and expiry; SKIP LOCKED keeps claimers disjoint.
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
    return json_build_object('claim', mailer.claim_batch(1, worker, token, lease_seconds, mark_started,
                                                         default_max_attempts),
                             'pausedMs', null);
  end if;

  -- As claim_batch, over the rows with a sender key only.
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
--! split
-- A mailbox a row names itself, paused past a row's hold (a throttle, a spent quota): its pending
-- rows due before the pause ends are moved to that end in one statement, by the worker whose send
-- met the pause, instead of each being claimed, given back and checked against its history there
-- (MAIL_FROM's rows are left unclaimed instead: claim_past_paused). One write per row and pause,
-- through email_outbox_named_sender_idx; rows another transaction holds are skipped (they go back
-- as before when claimed), and so are rows whose expiresAt comes first (send_at must stay before
-- it: their claim expires them). Returns how many rows moved.
create or replace function mailer.defer_paused_rows(paused_key text) returns integer
language plpgsql volatile
set enable_seqscan = off
set enable_bitmapscan = off
set plan_cache_mode = force_generic_plan
as $$
declare
  pause_end timestamptz;
  ctids tid[];
  moved integer;
begin
  select p.next_at into pause_end from mailer.mailbox_pacing p where p.mailbox = paused_key;
  if pause_end is null or pause_end <= now() then
    return 0;
  end if;
  select array_agg(c.ctid) into ctids
    from (select o.ctid from mailer.email_outbox o
           where o.status = 'pending' and o.sender_key is not null and o.sender_key = paused_key
             and o.send_at < pause_end and (o.expires_at is null or o.expires_at > pause_end)
             for update of o skip locked) c;
  if ctids is null then
    return 0;
  end if;
  update mailer.email_outbox o set send_at = pause_end where o.ctid = any(ctids);
  get diagnostics moved = row_count;
  return moved;
end $$;
