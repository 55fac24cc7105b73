-- 0165: the end of a mailbox's owed probe wakes the workers when its statements saw rows waiting for it that none moved and none left: a row another session moved just before is not left locked and unclaimed.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: 0116's function woke the workers only when one of its two updates moved a row. Each update
-- locks the rows it brings due with FOR UPDATE SKIP LOCKED, under the snapshot its statement took.
-- When another session (a worker's loop bringing held rows due, held-owed-rows.ts: a lookup row
-- noted for another mailbox whose probe ended earlier) moved such a row due and committed after
-- that snapshot, the update still reached the row: the lock follows the update to the moved
-- version and takes it, and the recheck against it fails (the move's transaction began first: its
-- now(), the row's new due time, is not after this one's), so the row was locked and not moved. No wake-up (nothing
-- moved), no note or 'owed-rows-held' (the later read finds the row due): silent, while it held the
-- lock until the transaction that ended the owed state committed. The claims the other session's
-- wake-up brought skip a locked row (never waiting for one), so nothing claimed the row, due now,
-- before the worker's due timer for its old time (the probe's end: its send deadline or lease end,
-- up to LEASE_SECONDS) or the backstop poll. (Where the move's transaction began after this one,
-- the recheck passes and this snapshot cannot update the moved version: the later read finds the
-- row waiting still and 'owed-rows-held' wakes the workers, as before.)
-- owed-probe-end-sibling.test.ts forces that order.
--
-- Now each update also reads, in the same statement (the same snapshot), whether any row waited.
-- When rows waited, none moved here and none is left to tell of ('owed-rows-held', itself a wake-up
-- to every listening worker, goes when one is), the empty notification goes anyway: at this
-- transaction's commit, its locks gone, the claims it wakes take the row. Which rows move, the
-- notes kept and forgotten, and every notification sent before are as in 0116, every other line as
-- there.
--
-- Cost: only where the owed state ends (UPDATE OF probe_owed, true to false): one more read of the
-- mailbox's rows by email_outbox_sender_key_idx, and of the noted rows by primary key when any are
-- noted; one wake-up (one empty claim per worker) where none went before, only in that case.
-- Nothing on the hot path changes. Same trigger, same function name and signature: replaced.
--
-- Older binaries end the owed state with the same statements and hear the same notifications (an
-- empty one a plain wake); nothing they call changes.
--! older-binaries-compatible

create or replace function mailer.owed_probe_rows_due() returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
set standard_conforming_strings = on
as $$
declare
  noted bigint[];
  moved boolean;
  waited boolean;
  held bigint;
begin
  select array_agg(w.outbox_id) into noted from mailer.owed_probe_lookups w where w.mailbox = new.mailbox;
  -- Invariant: only pending rows move, only earlier; email_outbox_sender_key_idx finds them. `waited`
  -- reads this statement's snapshot (a data-modifying CTE's rows are not seen by the rest): rows
  -- waiting then, moved here, skipped (locked) or locked here unmoved (moved by another since).
  with due as (
    update mailer.email_outbox o set send_at = now()
     where o.ctid = any(array(
             select c.ctid from mailer.email_outbox c
              where c.status = 'pending' and c.sender_key is not null and c.sender_key = new.mailbox
                and c.send_at > now() and c.last_error_code = 'mailbox_paused'
                for update of c skip locked))
       and o.status = 'pending' and o.send_at > now()
    returning o.id
  )
  select exists (select from due),
         exists (select from mailer.email_outbox c
                  where c.status = 'pending' and c.sender_key is not null and c.sender_key = new.mailbox
                    and c.send_at > now() and c.last_error_code = 'mailbox_paused')
    into moved, waited;
  -- Invariant: the noted rows given back for a pause only, only earlier; by primary key.
  if noted is not null then
    with due as (
      update mailer.email_outbox o set send_at = now()
       where o.ctid = any(array(
               select c.ctid from mailer.email_outbox c
                where c.id = any(noted)
                  and c.status = 'pending' and c.send_at > now() and c.last_error_code = 'mailbox_paused'
                  for update of c skip locked))
         and o.status = 'pending' and o.send_at > now()
      returning o.id
    )
    select moved or exists (select from due),
           waited or exists (select from mailer.email_outbox c
                              where c.id = any(noted)
                                and c.status = 'pending' and c.send_at > now() and c.last_error_code = 'mailbox_paused')
      into moved, waited;
  end if;
  if moved then
    perform pg_notify('mailer_outbox', '');
  end if;
  -- The mailbox's own rows left locked (a plain read never waits), noted as the lookup rows are.
  with left_locked as (
    select c.id from mailer.email_outbox c
     where c.status = 'pending' and c.sender_key is not null and c.sender_key = new.mailbox
       and c.send_at > now() and c.last_error_code = 'mailbox_paused'
  ), kept as (
    insert into mailer.owed_probe_lookups (mailbox, outbox_id)
    select new.mailbox, l.id from left_locked l
    on conflict do nothing
  )
  select min(l.id) into held from left_locked l;
  -- Notes of rows that wait no more (moved now; settled, claimed or given back otherwise) go.
  delete from mailer.owed_probe_lookups w
   where w.mailbox = new.mailbox
     and not exists (select from mailer.email_outbox c
                      where c.id = w.outbox_id and c.status = 'pending' and c.send_at > now()
                        and c.last_error_code = 'mailbox_paused');
  if held is not null then
    perform pg_notify('mailer_outbox', 'owed-rows-held ' || held);
  elsif exists (select from mailer.owed_probe_lookups w where w.mailbox = new.mailbox) then
    perform pg_notify('mailer_outbox', 'owed-rows-held');
  elsif waited and not moved then
    -- Rows waited, none moved here, none is left: another session moved them since this snapshot,
    -- and this transaction may hold them locked unmoved until its commit, which this wake follows.
    perform pg_notify('mailer_outbox', '');
  end if;
  return null;
end $$;
