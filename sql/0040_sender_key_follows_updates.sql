-- 0040: a row's sender_key follows an UPDATE of its message or template, and of its template's from_address.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: 0039 keys rows at insert only, so a row whose message or template was changed by hand (or
-- whose template's from_address was changed later) kept the key it was queued with, and could wait
-- out the pause of a mailbox it no longer sends from (a claim leaving MAIL_FROM's rows out, or
-- mailer.defer_paused_rows moving a named mailbox's rows) or be given back for its own mailbox's.
--
-- Not a BEFORE UPDATE trigger: Postgres locks each row a BEFORE ROW UPDATE trigger may see before
-- it reads the trigger's column list (+56 B of WAL per row of mark_sent_unlocked, which takes no
-- lock first; 0039's note). Nor an AFTER ROW one: it reads each updated row's old version before
-- its column list is judged, on every claim, heartbeat, settlement and bulk action (a bulk retry
-- of 1,000 rows read 363 heap pages where its bound is 327: bulk-actions.test.ts). A statement
-- trigger costs an UPDATE that sets neither column nothing per row (none of the engine's does):
-- after an UPDATE that names message or template, it re-keys the rows that may still be sent
-- (every status but sent, as 0039's backfill) whose key differs, calling nothing for a row that
-- names no sender and has no key. It reads the outbox's unsent rows once per such statement,
-- which is rare and by hand.
--
-- A template's from_address changed (or a template inserted after rows named it): its rows that
-- may still be sent (every status but sent, as 0039's backfill) are re-keyed, one write each for
-- the rows whose key changes. There is no index on template: this reads the outbox's unsent rows,
-- once per such change of a template, which is rare and by hand.
--
-- Older binaries: they never set message or template in an UPDATE, nor read the key; the triggers
-- keep their inserts' and hand updates' keys right too.
--! older-binaries-compatible
create or replace function mailer.rekey_unsent_rows() returns trigger language plpgsql as $$
begin
  update mailer.email_outbox o
     set sender_key = mailer.row_sender_key(o.message, o.template)
   where o.status <> 'sent'
     and (o.sender_key is not null or o.template is not null or o.message ? 'from')
     and o.sender_key is distinct from mailer.row_sender_key(o.message, o.template);
  return null;
end $$;

drop trigger if exists email_outbox_sender_key_update on mailer.email_outbox;
create trigger email_outbox_sender_key_update after update of message, template on mailer.email_outbox
  for each statement
  execute function mailer.rekey_unsent_rows();

create or replace function mailer.rekey_template_rows() returns trigger language plpgsql as $$
begin
  if tg_op = 'UPDATE' and old.from_address is not distinct from new.from_address then
    return null;
  end if;
  update mailer.email_outbox o
     set sender_key = mailer.row_sender_key(o.message, o.template)
   where o.template = new.name and o.status <> 'sent'
     and o.sender_key is distinct from mailer.row_sender_key(o.message, o.template);
  return null;
end $$;

drop trigger if exists templates_sender_key on mailer.templates;
create trigger templates_sender_key after insert or update of from_address on mailer.templates
  for each row
  execute function mailer.rekey_template_rows();
