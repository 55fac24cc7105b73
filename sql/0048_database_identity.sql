-- 0048: mailer.database_identity, one row: this database's own id, a random uuid made by migrate.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: outbox ids repeat across databases, and every Graph message named its database only by its
-- configured name (OutboxDatabase), which two deployments share when each has one database through
-- DATABASE_URL (`default`): staging and production sending from one mailbox. An interrupted send of
-- production's row 5 was looked up, found staging's message for its row 5, and was marked sent, a
-- mail lost. Every message now also carries this id (OutboxDatabaseId), which two databases never
-- share, and a lookup counts only a message carrying its own (src/transport/lookup-match.ts).
--
-- A dump restored keeps it (the same history: its messages are its own). A database CLONED from
-- another (a template, a branch, a dump restored as staging) shares it: give the clone its own,
--   update mailer.database_identity set id = gen_random_uuid();
-- (README, "Delivery promise"). The row is made here once: migrate records 0048 and never runs it
-- again, and should it (its record deleted by hand) the table and its row are kept, id and all.
--
-- A table older binaries never read: they keep working on a database that has it.
--! older-binaries-compatible

create table if not exists mailer.database_identity (
  -- Only `true` fits the key: the table holds one row at most.
  one_row boolean primary key default true check (one_row),
  id uuid not null default gen_random_uuid()
);
insert into mailer.database_identity default values on conflict (one_row) do nothing;
