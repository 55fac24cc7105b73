-- 0201: a worker notes in its registry entry when it last recorded a send, so status reads the newest send of the outbox exactly, without reading its rows.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: status' none-sent-for (--max-send-gap, exit 5) read the newest send from the newest 10,000
-- rows by id (none-sent-for.ts): a scheduled campaign of older ids sending while newer rows waited on
-- a 429's pause read as no row sent (an outage, exit 5), and a window full of rows not sent read as
-- unknown. sent_at is in no index: an index on it would cost WAL at every settlement.
--
-- mailer.workers.last_sent_at: when the worker last recorded a row sent (database time: now() less
-- how long ago the process recorded it, no machine clock trusted). Written by the registry beat every
-- heartbeat and reclaim already carries (heartbeat.ts registryBeat) while a send is not noted yet:
-- no statement is added, none per send; never moved back. NULL: none recorded since the worker
-- started (or since its entry was written again), or an older binary's entry.
--
-- Older binaries register and beat without it (NULL), and never read it: both run side by side during
-- a rolling deploy; status then reads their sends from the rows, as before. Nullable without a
-- default: no rewrite.
--! older-binaries-compatible

alter table mailer.workers add column last_sent_at timestamptz;
