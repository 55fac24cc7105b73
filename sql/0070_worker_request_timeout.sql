-- 0070: mailer.workers.request_timeout_seconds, the GRAPH_REQUEST_TIMEOUT_SECONDS a worker sends under, noted at its registration.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: a send whose outcome was never learned is looked up in the mailbox, and "not found" is
-- trusted only a grace (30 s) after the last moment its request could reach Graph. The looking
-- worker knew only its own timeout, and the sending worker's may have been longer (a restart that
-- shortened it), so the grace ran from the end of the attempt the send was made in when later: after
-- a crash, the reclaim of its lease, up to LEASE_SECONDS minus the timeout later than needed. A
-- worker now notes its timeout in its registry entry (null without Graph); the lookup reads the
-- sending worker's (its history entry's worker_id, the entry's id: workers_pkey) and counts from
-- send_started_at plus it, as the request's deadline runs from before the check that recorded it.
--
-- Older binaries register without it (null), and their lookups keep the rule they had: both run
-- side by side during a rolling deploy; a send by an older binary is waited for as before.
--! older-binaries-compatible

alter table mailer.workers add column request_timeout_seconds integer
  constraint workers_request_timeout_seconds_check check (request_timeout_seconds > 0);
