-- 0129: a send slot notes when a take first found its holder's liveness lock gone, so a live worker's slots outlast its LISTEN session's end.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: since 0117 a take that finds no slot free takes a busy slot whose holder's liveness lock
-- (an advisory lock on its LISTEN session) nobody holds. That lock ends with the session, and a
-- session can end under a live worker (pg_terminate_backend, idle_session_timeout, a connection
-- cut): its slots were taken while its sends were in flight, GRAPH_MAX_CONCURRENCY exceeded until
-- they ended. Now such a take notes here when it first found the lock gone (database time) and
-- takes the slot only at a later take, the lock still gone, 5 s after that sighting; a worker's
-- next LISTEN session takes its lock again and clears its slots' sightings in the same statement,
-- and every take clears the sighting of the slot it takes. A dead worker's slots come back 5 s
-- after the first take that finds them so, a live one's stay its own while it reconnects within 5 s.
--
-- Cost: none on the table's indexes (the column is in none: takes stay HOT updates); added
-- without a default: no table rewrite.
--
-- Older binaries neither read nor write the column. One of 0117 (or later, before this) takes a
-- dead-looking holder's slot at once, as it did; a slot it took keeps a sighting an earlier take
-- left, so may be taken as soon as its holder's lock is gone, 0117's rule again.
--! older-binaries-compatible

alter table mailer.send_slots add column if not exists holder_lock_gone_at timestamptz;

comment on column mailer.send_slots.holder_lock_gone_at is
  'When a take first found the holder''s liveness lock gone while the slot was busy (its note in holder_lock matching); taken by a later take 5 s on if still gone. NULL: not seen gone since the slot was taken or the holder took its lock again.';
