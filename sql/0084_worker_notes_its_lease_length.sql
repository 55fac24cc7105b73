-- 0084: a worker notes its LEASE_SECONDS in its registry entry, so another worker judges it live by its own beat interval.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: an idle worker beats the registry once per its own lease length (its reclaim carries the
-- beat), and 0079's clearing of stale owed probes judged every entry live by the reclaiming
-- worker's lease (two of them). With workers of different LEASE_SECONDS on one database (a rolling
-- deploy that shortens it), a worker of a 120 s lease beats every 120 s, and a worker of a 5 s lease
-- took it for gone 10 s after a beat and cleared the probe its MAIL_FROM owed while it ran: its
-- claims then went past the pause's probe (stale-owed-probe.test.ts).
--
-- mailer.workers.lease_seconds: the worker's LEASE_SECONDS, written at its registration and by a
-- beat that writes a lost entry again. An entry is live while it beat within two of its own lease
-- lengths. NULL (an older binary's entry): its lease unknown, it is judged by the longest lease a
-- worker takes (LEASE_SECONDS at most 3600: two hours), so no live one is taken for gone.
--
-- Older binaries register without it and never read it: both run side by side during a rolling
-- deploy. Nullable without a default: no rewrite.
--! older-binaries-compatible

alter table mailer.workers add column lease_seconds integer
  constraint workers_lease_seconds_check check (lease_seconds > 0);
