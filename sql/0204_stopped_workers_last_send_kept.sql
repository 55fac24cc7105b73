-- 0204: the newest send a stopped worker's registry entry noted is kept when the entry is removed, so status still reads it after a deploy.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: each worker notes its newest recorded send in its registry entry (0201), and status reads the
-- newest send of the outbox from there as well as from its newest 10,000 rows (none-sent-for.ts). A
-- worker's clean stop removes its entry, and the note with it: after a deploy (every machine
-- restarted) a campaign of older ids that was sending read as nothing sent, and rows waiting on a
-- 429's pause read as an outage (status exit 5) for --max-send-gap.
--
-- mailer.stopped_workers_last_send: one row (one = true), the newest send noted by a registry
-- entry since removed, or recorded by a worker after its last beat and told by its stop (database
-- time). Written by the statement that removes entries (a worker's clean stop, which also purges
-- entries silent for a day: deregister-worker.ts), so no statement is added, none per send;
-- never moved back. No row: no entry removed since noted a send.
--
-- Older binaries neither read nor write the table: both run side by side during a rolling deploy,
-- an older binary's stop loses its note as before (status then reads its sends from the rows). The
-- service role's default privileges cover a new table (deploy/README.md step 7).
--! older-binaries-compatible

create table if not exists mailer.stopped_workers_last_send (
  one boolean primary key default true check (one),
  last_sent_at timestamptz not null
);
