-- 0038: the table refuses a correlation id past 200 characters, as enqueue_email does; stored ones are dropped.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: email_outbox_correlation_idx (0010) takes an entry when a row becomes sent, failed or
-- cancelled, and an entry past its size limit (2,704 bytes after compression) fails the statement.
-- enqueue_email takes at most 200 characters and the trigger leaves a longer one out (0027), but a
-- row inserted by hand (the SQL contract names the column) could carry any: its send went out, then
-- the settlement of its whole batch failed ("index row size … exceeds btree version 4 maximum
-- 2704"), the leases ran out and the reclaim sent every row of that batch again, lease after lease.
-- Now such an insert or update is refused (23514, email_outbox_correlation_id_check), and a row
-- stored before keeps its mail without the id (null: no X-Correlation-Id), as 0027 does for the
-- trigger. 200 characters are at most 800 bytes: every allowed id fits the index.
--
-- Locks: the constraint is added NOT VALID (a moment's ACCESS EXCLUSIVE, no scan), so new writes
-- are checked at once; the stored long ids are then cleared (one scan, row locks on those rows
-- only), and VALIDATE scans under SHARE UPDATE EXCLUSIVE, which blocks no claim, send or enqueue.
-- Statement by statement, each its own transaction; a failed run is repeated from the start. The
-- ALTER waits for transactions on the table (an application's insert not yet committed) at most
-- migrate's lock_timeout, holding up writes behind it meanwhile, as any ALTER TABLE does.
--
-- Older binaries never write such an id (their enqueue refuses it), so they keep working.
--! no-transaction
--! older-binaries-compatible
-- Added once: a rerun after a failed VALIDATE finds it (and takes no table lock for it again).
do $$
begin
  if not exists (select 1 from pg_constraint
                  where conrelid = 'mailer.email_outbox'::regclass
                    and conname = 'email_outbox_correlation_id_check') then
    alter table mailer.email_outbox add constraint email_outbox_correlation_id_check
      check (char_length(correlation_id) <= 200) not valid;
  end if;
end $$;
--! split
update mailer.email_outbox set correlation_id = null where char_length(correlation_id) > 200;
--! split
alter table mailer.email_outbox validate constraint email_outbox_correlation_id_check;
