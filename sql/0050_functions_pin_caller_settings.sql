-- 0050: every PL/pgSQL function of the mailer schema runs with search_path and
-- standard_conforming_strings of its own, whatever the calling session set.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: they run in the caller's session (no SECURITY DEFINER): an application's enqueue_email, its
-- table's trigger (enqueue_from_row), its template writes. A session with
-- standard_conforming_strings = off (older drivers and ORMs still set it) read the backslashes of
-- our regular expressions as string escapes: enqueue_email failed for every message ("invalid byte
-- sequence for encoding UTF8: 0x9f", from is_email_address's \x9f), a trigger's {"priority": 5}
-- was refused and so was the application's INSERT, templates could not be written. And Postgres
-- prefers an operator whose argument types match exactly, from any schema on the search_path:
-- `jsonb ? 'literal'` took a (jsonb, jsonb) one created in a schema of the caller's path over
-- pg_catalog's (jsonb, text), failing every enqueue and every insert the trigger ran. Names of ours
-- were already qualified; the path now holds pg_catalog alone (pg_temp last, never first).
--
-- A setting a function changes for the transaction (set_config(…, true): the claim's
-- synchronous_commit, the insert's mailer.outbox_inserted) still lasts to the transaction's end:
-- only the settings pinned here are restored when the function returns. SQL functions stay
-- unpinned so that they are still inlined; they run inside the pinned ones, or in the service's
-- own statements. A later `create or replace` of one of these functions must restate both settings
-- (caller-session-settings.test.ts lists any that does not).
--
-- Older binaries call the same functions with the same results.
--! older-binaries-compatible

do $$
declare
  f regprocedure;
begin
  for f in
    select p.oid::regprocedure from pg_proc p join pg_language l on l.oid = p.prolang
     where p.pronamespace = 'mailer'::regnamespace and l.lanname = 'plpgsql'
     order by p.oid
  loop
    execute format('alter function %s set search_path = pg_catalog, pg_temp', f);
    execute format('alter function %s set standard_conforming_strings = on', f);
  end loop;
end $$;
