-- 0055: mailer.workers.lease_key, the short key a worker's claimed rows name it by (lease_owner).
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: the claimed row version carried the worker's id (host:pid:6 hex, 27 characters on a Fly
-- machine with a 5-digit pid, more with a longer pid or a pod's name), and WAL per drained row
-- follows its length (bench/page-room.ts: 751 B with 27 characters, 717 with 1 to 3, 735 with 4 to
-- 8). A worker now registers in each database under a key of 3 characters [0-9a-z] it draws, and
-- claims under it; the registry maps it back to the full id (host, pid, version) for whoever reads
-- the row (the API's leaseOwner, a reclaim's history). Unique among the registry's entries: a
-- worker that drew a key another entry holds draws again (src/outbox/lease-key.ts). An entry
-- stays while rows in flight name its key (a stop's deregistration keeps it), so a key is not
-- drawn again while an old row still names it.
--
-- Older binaries register without a key (null: no entry conflicts with it) and claim under their
-- full id, which the readers show as written: both run side by side during a rolling deploy.
--! older-binaries-compatible

alter table mailer.workers add column lease_key text
  constraint workers_lease_key_check check (lease_key ~ '^[0-9a-z]{3}$');
-- The key's uniqueness, and the readers' lookup of a key's worker.
create unique index workers_lease_key_idx on mailer.workers (lease_key);
