-- 0056: mailer.sender_mailboxes, the mailboxes this database's rows may have gone from that a row may no longer resolve to.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: a send whose outcome was never learned (a crash, a timeout, a lost lease) is looked up
-- before any resend in the mailbox the row resolves to NOW. A row's sender is resolved at send:
-- its own "from", else its template's from_address (rendered at send, not at enqueue), else the
-- worker's MAIL_FROM. Once a redeploy changed MAIL_FROM or an edit a template's from_address, the
-- lookup asked the new mailbox, found nothing, and the row went a second time, from the new one
-- (lookup-past-sender.test.ts). Recording the sender per send would grow the row version each
-- claim or start writes (WAL per row, issue 6); what changes is rare, so it is recorded where it
-- changes: each worker notes its MAIL_FROM here before its first claim (past-senders.ts), and an
-- edit of a template's from_address notes the address it replaced. A lookup that finds nothing in
-- the row's own mailbox asks these too (the most recently noted first): a message carries its
-- row's outbox id and database id, so another mailbox's copy is never taken for the row's.
-- A from_address filled per row ({{...}}) names no one mailbox and is not noted.
--
-- Older binaries neither read nor write the table; the trigger's insert runs under whoever edits
-- a template (the service role's default privileges cover a new table, deploy/README.md step 7).
--! older-binaries-compatible
create table if not exists mailer.sender_mailboxes (
  -- As the send gate keys a mailbox (mailer.address_key: lower case, the address in <...>).
  mailbox text primary key,
  noted_at timestamptz not null default now()
);

create or replace function mailer.note_replaced_sender() returns trigger language plpgsql
  set search_path = pg_catalog, pg_temp set standard_conforming_strings = on as $$
declare
  k text := mailer.address_key(old.from_address);
begin
  if k is not null and strpos(old.from_address, '{{') = 0 then
    insert into mailer.sender_mailboxes (mailbox) values (k)
      on conflict (mailbox) do update set noted_at = now();
  end if;
  return null;
end $$;

drop trigger if exists templates_replaced_sender on mailer.templates;
create trigger templates_replaced_sender after update of from_address on mailer.templates
  for each row when (old.from_address is distinct from new.from_address)
  execute function mailer.note_replaced_sender();
