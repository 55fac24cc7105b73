-- 0189: each attempt history entry says what it records (email_attempts.kind), so the worker reads that, not its words.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: the worker told a history entry by its error text: a stop under which no send started by
-- its first words, a send a stop interrupted by "during the send", an ending that left an
-- interrupted send unresolved by "may have delivered it", an unverified resend by its last words.
-- A reworded message changed behaviour without a word: CANCELLED_UNRESOLVED ("whether it delivered
-- the message is unknown") was never read as unresolved, so a row cancelled so, retried and resent,
-- whose worker stopped during that resend, failed naming the last send alone, not both; and a
-- provider's own text holding those words was read as ours. Now every entry the worker writes
-- carries its kind (a sent one's is implied, below), and the readers (src/outbox/history-kind.ts)
-- go by it:
--   attempt               an attempt's outcome, a wait, a lookup's answer, a cancel or an expiry
--                         that names no interrupted send left unresolved (whether its own send was
--                         interrupted its error_code and http_status say, as before);
--   resent                a retry or throttle of a send made again without knowing whether an
--                         interrupted earlier send delivered the row, answered for sure: that
--                         earlier send may have delivered it;
--   resent_interrupted    such a resend that may itself have reached the provider: it, or the
--                         earlier interrupted send, may have delivered it;
--   unresolved            the row ended (failed, expired, cancelled) with an interrupted send whose
--                         outcome is unknown: it may have delivered it;
--   stopped_before_send   a reclaim: the worker holding the lease stopped before the send started;
--   stopped_during_send   a reclaim: it stopped during the send, outcome unknown;
--   stopped_looking_up    a reclaim: it stopped while looking up an interrupted send, no send started;
--   stopped_before_resend a reclaim: with an interrupted send unresolved, it stopped before sending again.
-- NULL, but for a sent entry: one an older binary wrote (before 0189, or during a rolling deploy),
-- read by its words as before (those releases' words, which no longer change). No backfill: the
-- table is the largest in the schema, and the entries the readers look at are few and recent.
--
-- Locks: the column is nullable without a default (a catalog change: no rewrite, a moment's
-- ACCESS EXCLUSIVE); its check is added NOT VALID in the same ALTER TABLE (no scan; new writes are
-- checked at once), then VALIDATE scans under SHARE UPDATE EXCLUSIVE, which blocks no claim,
-- settlement or enqueue. Every stored row passes (all NULL). Statement by statement; a failed run
-- is repeated from the start.
--
-- A sent entry's kind is always attempt: it is implied by its outcome, not stored (NULL, the check
-- says so). The drain writes one per row (mailer.mark_sent_unlocked, 0078, left as it is): stored,
-- 'attempt' made each 8 B more of WAL, 727 against 719 B a row (bench/drain-turns.ts, c10).
--
-- Older binaries never read the column and insert their other entries without it (NULL), which
-- the readers take by their words: they keep working, side by side with this release.
--! no-transaction
--! older-binaries-compatible
alter table mailer.email_attempts
  add column if not exists kind text,
  drop constraint if exists email_attempts_kind_check,
  add constraint email_attempts_kind_check
    check (kind is null
           or (outcome <> 'sent'
               and kind in ('attempt', 'resent', 'resent_interrupted', 'unresolved', 'stopped_before_send',
                            'stopped_during_send', 'stopped_looking_up', 'stopped_before_resend'))) not valid;
--! split
alter table mailer.email_attempts validate constraint email_attempts_kind_check;
--! split
comment on column mailer.email_attempts.kind is
  'What the entry records (sql/0189): attempt, resent, resent_interrupted, unresolved, stopped_before_send, stopped_during_send, stopped_looking_up, stopped_before_resend; NULL: a sent entry (an attempt), or one a binary before 0189 wrote.';
