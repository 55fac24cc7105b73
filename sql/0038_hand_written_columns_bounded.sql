-- 0038: the table refuses what enqueue never writes and the engine cannot take: a long correlation id, a wide priority, int's largest attempts, an infinite send_at.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: enqueue_email and the trigger (0027) keep these within bounds, but a row inserted or updated
-- by hand (the SQL contract names the columns) could carry any value:
-- - A correlation id: email_outbox_correlation_idx (0010) takes an entry when a row becomes sent,
--   failed or cancelled, and one past its size limit (2,704 bytes after compression) fails the
--   statement. The send went out, then the settlement of its whole batch failed ("index row size
--   … exceeds btree version 4 maximum 2704"), the leases ran out and the reclaim sent every row of
--   that batch again, lease after lease. 200 characters are at most 800 bytes: every id fits.
-- - A priority: the claim probes the claim index once per distinct pending priority (0006), so
--   hand-written rows spread over smallint made every claim, an empty one too, cost a probe per
--   priority: with 65,536 of them among 200,000 scheduled rows, 1.2-2.1 s a claim (0.5-1 ms with
--   one priority, 7-12 ms with enqueue's 201).
-- - A pending row's attempts at integer's largest value: the claim writes attempts + 1, which
--   overflowed ("integer out of range"), so every claim holding that row, all of them while it is
--   first in claim order, failed: nothing was sent from the whole outbox. Only that one value is
--   refused (a claim, the one writer that adds to attempts, takes only pending rows).
-- - An infinite send_at: on Postgres 16 and older, 'infinity' - now() is an error ("cannot subtract
--   infinite timestamps"), so a pending row at 'infinity' failed every claim (its look-ahead for the
--   next due row) and one at '-infinity' every read of the oldest due row's age (/v1/stats,
--   /metrics, status). enqueue's sendAt takes ISO-8601 times only.
-- Now such a write is refused (23514, email_outbox_correlation_id_check, email_outbox_priority_check,
-- email_outbox_attempts_check, email_outbox_send_at_check). Rows stored before keep their mail: a
-- long correlation id is dropped (null: no X-Correlation-Id), as 0027 does for the trigger; a
-- priority is brought to the nearer bound, so claim order between rows stays as it was except among
-- those beyond one bound; a pending row's attempts one below the largest, so its claim is its last
-- attempt; send_at 'infinity' becomes the last second of 9999 (still never due), '-infinity' now
-- (due), or a second before its expires_at when that is sooner.
--
-- Locks: each constraint is added NOT VALID (a moment's ACCESS EXCLUSIVE, no scan), so new writes
-- are checked at once; the stored values are then mended (one scan, row locks on those rows only),
-- and VALIDATE scans under SHARE UPDATE EXCLUSIVE, which blocks no claim, send or enqueue.
-- Statement by statement, each its own transaction; a failed run is repeated from the start. The
-- ALTER waits for transactions on the table (an application's insert not yet committed) at most
-- migrate's lock_timeout, holding up writes behind it meanwhile, as any ALTER TABLE does.
--
-- Older binaries never write such values (their enqueue refuses them), so they keep working.
--! no-transaction
--! older-binaries-compatible
-- Added once: a rerun after a failed VALIDATE finds them (and takes no table lock for them again).
do $$
begin
  if not exists (select 1 from pg_constraint
                  where conrelid = 'mailer.email_outbox'::regclass
                    and conname = 'email_outbox_correlation_id_check') then
    alter table mailer.email_outbox
      add constraint email_outbox_correlation_id_check
        check (char_length(correlation_id) <= 200) not valid,
      add constraint email_outbox_priority_check
        check (priority between -100 and 100) not valid,
      add constraint email_outbox_attempts_check
        check (status <> 'pending' or attempts < 2147483647) not valid,
      add constraint email_outbox_send_at_check
        check (isfinite(send_at)) not valid;
  end if;
end $$;
--! split
update mailer.email_outbox
   set correlation_id = case when char_length(correlation_id) > 200 then null else correlation_id end,
       priority = greatest(-100, least(100, priority)),
       attempts = case when status = 'pending' and attempts = 2147483647 then 2147483646 else attempts end,
       -- least() passes over a null expires_at; expires_at > send_at (email_outbox_expiry_check) holds.
       send_at = case when isfinite(send_at) then send_at
                      when send_at > now() then timestamptz '9999-12-31 23:59:59+00'
                      else least(now(), expires_at - interval '1 second') end
 where char_length(correlation_id) > 200 or priority not between -100 and 100
    or (status = 'pending' and attempts = 2147483647) or not isfinite(send_at);
--! split
alter table mailer.email_outbox validate constraint email_outbox_correlation_id_check;
--! split
alter table mailer.email_outbox validate constraint email_outbox_priority_check;
--! split
alter table mailer.email_outbox validate constraint email_outbox_attempts_check;
--! split
alter table mailer.email_outbox validate constraint email_outbox_send_at_check;
