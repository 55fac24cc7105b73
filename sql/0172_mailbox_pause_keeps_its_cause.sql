-- 0172: a mailbox's pause keeps its cause, a provider throttle or Graph refusing the mailbox; older binaries keep working.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: a mailbox is paused (pauseMailbox, src/outbox/mailbox-pacing.ts) both for a provider
-- throttle (429 or 503 with Retry-After) and for Graph refusing the mailbox itself (404
-- ErrorInvalidUser: a mistyped MAIL_FROM; 403: the app not let send from it), and the row kept
-- no cause: `outbox-mailer status` guessed it from the pending rows' codes, wrongly when the
-- refusal's code was not among the five shown or an old one lingered. The statement that notes a
-- pause now writes its cause here; status, /v1/stats and /metrics count the pauses standing now
-- by it.
--
-- Values: 'throttle' or 'refused', the cause of the pause that holds the mailbox (the one ending
-- last: a shorter pause noted within it leaves it as it was). NULL: a row written before this
-- column, or by an older binary, whose pauses are throttles as they were always told.
--
-- Cost: added without a default, no table rewrite; the check reads the table's rows (two per
-- mailbox used, all NULL) once. Nothing on the send's hot path reads it (takePacing,
-- mailboxPausedFor): only pauseMailbox writes it, in the statement that notes the pause.
--
-- Older binaries neither read nor write it: their pauses insert NULL (a throttle) and their
-- updates leave it as it was. Nothing they call changes.
--! older-binaries-compatible

alter table mailer.mailbox_pacing add column if not exists pause_reason text
  constraint mailbox_pacing_pause_reason_check check (pause_reason in ('throttle', 'refused'));
