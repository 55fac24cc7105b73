-- 0199: send_slots.holder_lock says in the catalogue who writes its note: the take, or its worker's LISTEN session when it takes the lock, not the take alone.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: 0117 (released) comments the column as the note written "when the holder's liveness lock
-- ... was held at the take; else NULL", and a busy slot whose note matches and whose lock nobody
-- holds as "taken again". Neither holds since: a slot taken while no session of its worker's held
-- the lock (its first sends at its start, a wait for an earlier session's end) is noted by the
-- session's take of the lock (every busy slot of its holder's), a take under way then by its worker
-- once it answers (noteSlots) or by the session's statement after the lock's (noteTakenMeanwhile,
-- src/outbox/holder-lock.ts); and since 0129 such a slot is first seen gone and taken 5 s on.
-- An operator reading \d+ mailer.send_slots for a slot held after its worker died was told the
-- slot could not have been noted. 0117 cannot be corrected.
--
-- Now the column's comment says so: a comment only, no column, row or function changed.
--
-- Older binaries: nothing they read or write changes.
--! older-binaries-compatible

comment on column mailer.send_slots.holder_lock is
  'The note of the holder''s liveness lock (advisory, hashtextextended(holder, 0), held by its worker''s LISTEN session): holder || ''@'' || extract(epoch from pg_postmaster_start_time()) || ''/'' || coalesce(extract(epoch from pg_stat_get_bgwriter_stat_reset_time())::text, '''') (holderLockNote, src/outbox/holder-lock.ts). Written by the take when that session held the lock as the take went out; a slot taken while none did is noted by the session when it takes the lock (every busy slot of its holder''s), and a take under way then by its worker once it answers (noteSlots) or by the session''s statement after the lock''s (noteTakenMeanwhile). NULL while no session of the holder''s has held the lock since the take (LISTEN_MODE=poll, a pooler, an earlier session holding it); an older binary''s take leaves the note as it was (another holder''s: no match). A busy slot whose note matches and whose lock nobody holds is seen gone (holder_lock_gone_at, 0129) and taken again 5 s on if still gone.';
