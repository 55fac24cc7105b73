-- 0069: mailer.mailbox_pacing.noted_by and noted_at, the worker whose start noted the pacing rate in force.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: every worker paces by the MAILBOX_RATE_PER_MINUTE of the newest worker to start (0061), so a
-- machine of the old release that starts after a rolling deploy changed the rate (Fly restarts a
-- crashed or migrated machine not updated yet) makes its old rate the one in force again, and no one
-- was told. A start that replaces another rate now logs a warning naming both rates and the worker
-- that noted the one replaced, and `status` shows the rate in force and who noted it (this column).
--
-- Older binaries: both columns are nullable without a default (no rewrite); an older binary's note
-- (0061's statement) names its columns and leaves these as they stand, moving next_at only: a
-- noted_at other than the row's next_at says the rate was noted by an older binary since.
--! older-binaries-compatible
alter table mailer.mailbox_pacing
  add column if not exists noted_by text,
  add column if not exists noted_at timestamptz;
