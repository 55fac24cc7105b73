-- 0002: limits shared by every worker through Postgres: provider concurrency slots, per-mailbox pacing.
-- Forward-only. Never edit this file after release: add a new numbered file instead.

-- One row per concurrency slot in use; a holder that dies frees its slot when expires_at passes.
create table mailer.send_slots (
  slot       integer primary key,
  holder     text        not null,
  token      uuid        not null,
  expires_at timestamptz not null
);

-- Per-mailbox pacing (GCRA): the next moment a send from this mailbox may start.
-- A provider throttle (429) pushes next_at forward for every worker.
create table mailer.mailbox_pacing (
  mailbox text primary key,
  next_at timestamptz not null
);
