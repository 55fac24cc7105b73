-- 0059: a template's replaced from_address is noted with the schema owner's rights, so a role that may edit templates need not be granted mailer.sender_mailboxes.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: 0056's trigger inserted into mailer.sender_mailboxes as whoever edits mailer.templates. A
-- role granted table by table before 0056 (a tool that keeps the templates, with the outbox rows
-- 0040's rekey updates) had no right on the new table, and its edit of a from_address failed after
-- the upgrade with "permission denied for table sender_mailboxes"
-- (template-editor-role.test.ts). The function runs as its owner (the role that runs migrate)
-- instead: it is a trigger function, which no one can call but the trigger, its search_path is
-- pinned, every name in it qualified, and it writes only the key of the address the edited row held
-- into that one table. The only function of the schema that does (deploy/README.md step 7).
--! older-binaries-compatible
alter function mailer.note_replaced_sender() security definer;
-- Never called directly (Postgres refuses a trigger function outside a trigger): no one needs it.
revoke execute on function mailer.note_replaced_sender() from public;
