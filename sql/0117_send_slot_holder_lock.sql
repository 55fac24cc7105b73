-- 0117: a send slot notes whether its holder's liveness lock was held when it was taken, so a holder's death frees it before its TTL.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: a worker killed -9 (OOM, a machine lost) left its provider slots taken until their TTL
-- (GRAPH_REQUEST_TIMEOUT_SECONDS + 15 s): with a small GRAPH_MAX_CONCURRENCY no worker sent for
-- that long. A worker of this release holds a session-level advisory lock, keyed
-- hashtextextended(its holder id, 0), on its LISTEN session (a direct one, checked so: never
-- behind a transaction pooler), which the server releases the moment that session ends. Its slot
-- take notes here `holder || '@' || the server's start (epoch) || '/' || its statistics' reset
-- (epoch)` when that lock is held at the take, else NULL (LISTEN_MODE=poll, a pooler, the session
-- not yet connected). A take that finds no free slot takes one whose note matches its holder and
-- this server's and whose holder's lock nobody holds (send-slots.ts): the session that held it at
-- the take has ended. The server's start in the note keeps a restart (every session ended at once,
-- live workers' too) from counting as their deaths, the statistics' reset a crash restart (a
-- backend killed -9: every session ended, the start time kept, the statistics reset); a reset by
-- hand only keeps slots to their TTL. The holder in it keeps an older binary's take, which leaves the
-- column as it was, from counting by the previous holder's note: such a slot waits out its TTL.
--
-- Cost: none on the table's indexes (the column is in none: takes stay HOT updates); added
-- without a default: no table rewrite.
--
-- Older binaries neither read nor write the column; their takes and frees are as before, and a
-- slot they hold is never taken before its TTL.
--! older-binaries-compatible

alter table mailer.send_slots add column if not exists holder_lock text;

comment on column mailer.send_slots.holder_lock is
  'holder || ''@'' || extract(epoch from pg_postmaster_start_time()) || ''/'' || extract(epoch from pg_stat_get_bgwriter_stat_reset_time()) when the holder''s liveness lock (advisory, hashtextextended(holder, 0), on its LISTEN session) was held at the take; else NULL. A busy slot whose note matches and whose lock nobody holds is taken again.';
