-- 0198: a worker notes in its registry entry that Entra refuses its Graph credential (the code, since when), so status reads the refusal from the database.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: a refused credential (a client secret past its end, a certificate not registered) stops
-- every send of the workers that hold it, yet the rows waiting were read by `status` as mail on
-- its way: it exited 0 until the oldest due row passed --max-pending-age (600 s), though only the
-- workers' /readyz and metrics knew the cause.
--
-- mailer.workers.credential_refused_code: Entra's code (AADSTS7000222, certificate_expired, ...)
-- while the worker's last token request was refused for good; NULL once a token came, or never
-- refused. credential_refused_since: when that refusal began (database time). Written by the
-- registry beat every heartbeat and reclaim already carries (heartbeat.ts registryBeat): no
-- statement is added. Only the code is kept: never the secret, never Entra's text (it names the
-- app and may name the tenant).
--
-- Older binaries register and beat without them (NULL: not known refused), and never read them:
-- both run side by side during a rolling deploy. Nullable without a default: no rewrite.
--! older-binaries-compatible

alter table mailer.workers
  add column credential_refused_code text,
  add column credential_refused_since timestamptz;
