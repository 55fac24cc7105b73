-- 0184: a pause's cause a release with 0172 but not 0178 names again (a refusal met again past its pause) is kept, not read as a throttle; older binaries keep working.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: 0178's trigger (mailbox_pacing_pause_reason_unnamed) takes a write that leaves both
-- pause_reason and pause_reason_ends as they were, while moving the pause later, for one naming no
-- cause (a release before 0172), and forgets the cause. A release with 0172 but before 0178 names
-- its cause (pause_reason in its SET list) but does not know pause_reason_ends: its refusal noted
-- again past the standing pause writes 'refused' over 'refused', the marker untouched, and read as
-- unnamed it lost the cause. During a rolling deploy from such a release, a MAIL_FROM Graph refuses,
-- probed at each pause's end by its workers, read as a provider throttle from the first probe
-- refused again: status, /v1/stats and outbox_mailboxes_paused_refused said a throttle, and the
-- deploy guide's "Mailbox throttled" fired instead of "Mailbox refused".
--
-- Now: a write whose SET list names pause_reason (a column trigger: UPDATE OF, which counts the
-- statement's targets, an INSERT's ON CONFLICT DO UPDATE too, not values) but leaves
-- pause_reason_ends as it was has it set to the end of the pause the row now holds
-- (mailer.pause_end under the rate in force: the new pause's end when the cause is the new pause's,
-- the standing one's when it kept its cause), before 0178's trigger reads it: fired in name order,
-- "…_named" before "…_unnamed", whose WHEN then sees the marker moved and leaves the cause. A hand
-- update that sets pause_reason names it too. A write that does not
-- name pause_reason (a release before 0172, takePacing, a hand lift of next_at) fires nothing here.
--
-- Cost: only a statement naming pause_reason calls it (pauseMailbox, a pause, never a pacing turn):
-- one primary-key read of the rate noted. Not security definer: the writer updates the table anyway.
--
-- Older binaries: those before 0172 never name the column; those of 0172–0177 now keep the cause
-- they name, as they did before 0178. Nothing they call changes.
--! older-binaries-compatible

create or replace function mailer.pause_reason_named() returns trigger
language plpgsql volatile
set search_path = pg_catalog, pg_temp
set standard_conforming_strings = on
as $$
begin
  -- Invariant: a cause named stands for the pause the row holds after the write (0178's marker).
  new.pause_reason_ends := mailer.pause_end(
    new.next_at, new.turn_interval, new.throttled_until,
    coalesce((select noted.turn_interval from mailer.mailbox_pacing noted
               where noted.mailbox = 'pacing rate'), interval '0'));
  return new;
end $$;

revoke execute on function mailer.pause_reason_named() from public;

create trigger mailbox_pacing_pause_reason_named before update of pause_reason on mailer.mailbox_pacing
  for each row
  when (new.pause_reason is not null
        and new.pause_reason_ends is not distinct from old.pause_reason_ends)
  execute function mailer.pause_reason_named();
