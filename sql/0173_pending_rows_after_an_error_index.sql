-- 0173: the pending rows whose last try met an error, in the claim's order with their code, built without blocking writes; older binaries keep working.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: `outbox-mailer status` counts the pending rows waiting after an error by their code
-- (src/outbox/pending-last-errors.ts). It looked at the first 10,000 pending rows in the claim's
-- order (email_outbox_claim_idx), but a row that met an error is given back due later (a throttle's
-- Retry-After, its sender mailbox's pause, a transient failure's backoff, Graph out of reach),
-- behind every row not tried yet: with more than 10,000 rows due (a burst, a catch-up after an
-- outage), the rows looked at were untried ones and status counted none of those waiting after an
-- error (pending-last-errors.test.ts). Only a refused credential and MAIL_FROM's pause name the due
-- rows themselves, in the claim's order (src/outbox/waiting-rows.ts). Here the rows with a code are
-- listed on their own, in the claim's order, their code carried along, so the read looks at those
-- rows only (an index-only scan as autovacuum leaves them), however many wait untried before them.
-- A row waiting for its mailbox's pacing turn (mailbox_paced: MAILBOX_RATE_PER_MINUTE's schedule,
-- every row of a paced backlog given back once) met no error and is left out: status counts it as
-- held back, and a paced backlog neither fills the bound nor writes an entry per row.
--
-- Writes: an entry only when a row becomes pending with a code other than mailbox_paced (a retry,
-- a wait given back, a requeue of a failed row, which keeps its code); enqueues, claims, sends and
-- pacing turns add none. status, send_at and last_error_code are indexed already
-- (email_outbox_claim_idx, 0025's include): no update that was HOT stops being one.
--
-- An index is invisible to binaries that predate it: they keep working on a database that has it.
-- Built CONCURRENTLY, as 0009: running migrate again after a failed build drops it first.
--! no-transaction
--! older-binaries-compatible
drop index concurrently if exists mailer.email_outbox_pending_error_idx;
--! split
create index concurrently email_outbox_pending_error_idx
  on mailer.email_outbox (priority, send_at, id) include (last_error_code)
  where status = 'pending' and last_error_code is not null and last_error_code <> 'mailbox_paced';
