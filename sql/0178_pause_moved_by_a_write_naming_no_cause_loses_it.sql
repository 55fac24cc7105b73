-- 0178: a mailbox's pause moved later by a write that names no cause (an older binary's throttle) no longer keeps the cause 0172 noted; older binaries keep working.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: 0172 keeps a pause's cause (pause_reason) as the binary of this release notes it, the cause
-- of the pause that ends last. A binary before 0172, during a rolling deploy (or after a rollback),
-- pauses a mailbox with a statement that moves next_at and throttled_until and leaves pause_reason
-- as it was: its throttle outlasting a refusal's pause kept 'refused' until that throttle ended,
-- and status, /v1/stats and outbox_mailboxes_paused_refused said "paused by Graph refusing it" of
-- it meanwhile ("Sender mailbox refused"'s words, not "Mailbox throttled"'s). So did an older
-- binary's throttle after a refusal's pause lifted by hand (next_at set to now(), README), which
-- 0172's statement handles for its own pauses only.
--
-- Now: pause_reason_ends, the end of the pause the cause was noted for, written by the statement
-- that notes a cause (pauseMailbox, src/outbox/mailbox-pacing.ts) with it: its own end when the
-- cause is the new pause's, the kept one's when a longer pause keeps its cause. A write that
-- changes neither, but moves the pause's end (next_at, turn_interval, throttled_until), names no
-- cause; this trigger then forgets the cause (NULL: read as a throttle, as an older binary's pause
-- always was) when the pause now ends later than the one standing before the write (the shared
-- pause rule, mailer.pause_end, under the rate in force), or when no pause stands after it (a
-- pacing turn taken, a pause lifted by hand): that pause is not the one whose cause was noted. A
-- shorter pause noted within the standing one by an older binary leaves its end, and its cause.
-- The marker tells a cause noted again with the same value (a refusal met again, past its own
-- pause) from one not named: both leave pause_reason as it was.
--
-- A write that names pause_reason (a hand update, a 0172 release's pause statement) keeps its
-- cause: 0184's trigger, which fires before this one, writes pause_reason_ends for it.
--
-- Cost: the column is added without a default, no table rewrite. The trigger's WHEN reads the
-- row's own columns: only a row holding a cause calls the function (one primary-key read of the
-- rate noted), and only when its pause's columns change; the first such write with no pause
-- standing (the first pacing turn after the pause) clears the cause, so the hot path's turns
-- (takePacing) call nothing after it. Not security definer: the writer updates the table anyway.
--
-- Older binaries neither read nor write the column; their statements fire the trigger as any
-- write does, which is the point. Nothing they call changes.
--! older-binaries-compatible

alter table mailer.mailbox_pacing add column if not exists pause_reason_ends timestamptz;

comment on column mailer.mailbox_pacing.pause_reason_ends is
  'The end of the pause pause_reason was noted for (pauseMailbox, 0178): written with the cause; a write that moves the pause later naming neither (an older binary''s throttle) loses the cause (mailbox_pacing_pause_reason_unnamed).';

create or replace function mailer.pause_reason_unnamed() returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
set standard_conforming_strings = on
as $$
declare
  -- The rate in force, as the binary's RATE_IN_FORCE reads it (src/outbox/pacing-rate.ts).
  rate interval := coalesce((select noted.turn_interval from mailer.mailbox_pacing noted
                              where noted.mailbox = 'pacing rate'), interval '0');
  ends timestamptz := mailer.pause_end(new.next_at, new.turn_interval, new.throttled_until, rate);
begin
  -- Invariant: a cause stays only on a pause standing that ends no later than before the write.
  if ends is null or ends <= now()
     or ends > coalesce(mailer.pause_end(old.next_at, old.turn_interval, old.throttled_until, rate),
                        '-infinity') then
    new.pause_reason := null;
    new.pause_reason_ends := null;
  end if;
  return new;
end $$;

revoke execute on function mailer.pause_reason_unnamed() from public;

create trigger mailbox_pacing_pause_reason_unnamed before update on mailer.mailbox_pacing
  for each row
  when (old.pause_reason is not null
        and new.pause_reason is not distinct from old.pause_reason
        and new.pause_reason_ends is not distinct from old.pause_reason_ends
        and (new.next_at, new.turn_interval, new.throttled_until)
            is distinct from (old.next_at, old.turn_interval, old.throttled_until))
  execute function mailer.pause_reason_unnamed();
