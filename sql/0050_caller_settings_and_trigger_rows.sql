-- 0050: every PL/pgSQL function of the mailer schema runs with search_path and
-- standard_conforming_strings of its own, whatever the calling session set; the trigger keeps a row
-- whose json jsonb refuses, stores virtual generated columns' values, and holds a tenant column's
-- value to 200 characters.
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
-- mailer.settle_verdict, a SQL function the service's settlement inlines (unpinned, to stay
-- inlined), divided a float8 by the integer 1000: an operator taking exactly (float8, integer),
-- which pg_catalog has not, won from any schema on the service's path, pg_catalog first or not,
-- and ran with the service's rights at every settlement of a retry. It divides by 1000::float8
-- now, an exact match in pg_catalog; every other operator and function of it matched one already.
--
-- A setting a function changes for the transaction (set_config(…, true): the claim's
-- synchronous_commit, the insert's mailer.outbox_inserted) still lasts to the transaction's end:
-- only the settings pinned here are restored when the function returns. SQL functions stay
-- unpinned so that they are still inlined; they run inside the pinned ones, or in the service's
-- own statements. A later `create or replace` of one of these functions must restate both settings
-- (caller-session-settings.test.ts lists any that does not).
--
-- mailer.enqueue_from_row also keeps a row whose json column holds \u0000 or a lone surrogate
-- (valid json, which jsonb refuses: to_jsonb(NEW) failed with SQLSTATE 22P05 or 22P02, and with it
-- the application's INSERT, whatever "columns" kept; json's own functions refuse it as well, so each
-- column is read alone): each column that cannot be jsonb is stored as its JSON text, a string,
-- which {{column}} prints as it printed a json column's JSON (json-nul-source-row.test.ts); a
-- {{column.field}} into it fails that mail at send with template_error, never the insert. Every
-- row pays for one exception block (a subtransaction that writes nothing, so takes no transaction
-- id: about 2 µs a row measured). Otherwise as in 0034; it keeps its privileges and owner.
--
-- It stores a VIRTUAL generated column's value (Postgres 18's default kind: computed when a query
-- reads the row, never for a trigger, whose row holds NULL there): the mail said "Dear ," where the
-- application read "Dear ADA" (generated-column-source-row.test.ts). Each is computed from the
-- row's other columns by its own expression, typed as its column. A row with no NULL pays a
-- jsonpath test (about 3 µs measured), one holding a NULL a lookup in pg_attribute (about 20 µs).
--
-- And it holds a tenantColumn value to 200 characters, as enqueue and the API hold a tenant: a
-- longer one is stored as its first 130 characters, "…" and its SHA-256 in hex (195), a tenant of
-- its own that no tenant-scoped token can name, as any value outside the tenant characters. Past
-- about 2.7 kB the deploy guide's optional tenant index refused the row's entry when it was
-- settled: the statement settling its whole batch failed, and every row claimed with it was sent
-- again at each lease's end while it never left sending (long-tenant-column.test.ts). The table
-- refuses a longer tenant from now on (email_outbox_tenant_check: a hand-written insert gets
-- SQLSTATE 23514, as 0038's checks give), and a row stored before with one gets that same shorter
-- tenant: a check not yet validated still holds every update, so a claim of such a row would fail.
--
-- Locks and order, as 0038: the trigger that writes no long tenant first, then the check added NOT
-- VALID (a moment's ACCESS EXCLUSIVE, no scan), the stored rows mended (one scan, row locks on
-- those rows only), and VALIDATE under SHARE UPDATE EXCLUSIVE, which blocks no claim, send or
-- enqueue. Statement by statement, each its own transaction; a failed run is repeated from the start.
--
-- Older binaries call the same functions with the same results, and store no tenant past 200
-- characters (enqueue and the API refuse one).
--! no-transaction
--! older-binaries-compatible

create or replace function mailer.enqueue_from_row() returns trigger language plpgsql as $$
declare
  template_name text;
  o jsonb := '{}';
  row_data jsonb;
  stored jsonb;
  correlation text;
  tenant_value text;
  src record;
  col name;
  val jsonb;
  expr text;
begin
  if TG_WHEN = 'BEFORE' or TG_LEVEL <> 'ROW' then
    raise exception using errcode = '22023',
      message = format('mailer.enqueue_from_row: trigger %s on %I.%I must be an AFTER … FOR EACH ROW trigger (AFTER INSERT, as documented; UPDATE or DELETE also work), not %s %s FOR EACH %s',
                       TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_WHEN, TG_OP, TG_LEVEL);
  end if;
  if TG_NARGS < 1 then
    raise exception using errcode = '22023',
      message = format('mailer.enqueue_from_row on %I.%I needs a template name argument', TG_TABLE_SCHEMA, TG_TABLE_NAME);
  end if;
  -- A DELETE trigger has no NEW: the row deleted is the one its mail is about.
  if TG_OP = 'DELETE' then
    src := OLD;
  else
    src := NEW;
  end if;
  begin
    row_data := to_jsonb(src);
  exception when untranslatable_character or invalid_text_representation then
    -- A json value jsonb refuses (\u0000, a lone surrogate: json takes both), alone or inside a
    -- composite or an array: each column is read alone, and one jsonb refuses is kept as its JSON
    -- text, a string, never failing the insert. Rare: dynamic SQL is paid only here.
    row_data := '{}';
    for col in select a.attname from pg_attribute a
                where a.attrelid = TG_RELID and a.attnum > 0 and not a.attisdropped order by a.attnum loop
      begin
        execute format('select to_jsonb(($1).%I)', col) into val using src;
      exception when untranslatable_character or invalid_text_representation then
        execute format('select to_jsonb(to_json(($1).%I)::text)', col) into val using src;
      end;
      row_data := row_data || jsonb_build_object(col, val);
    end loop;
  end;
  -- Postgres 18 computes a VIRTUAL generated column (its default) when a query reads it, never for
  -- a trigger's row, which holds NULL: each is computed here from the row's other columns, as a
  -- read would, typed as its column (numeric(10,2) keeps 12.00). Only a row holding a NULL can
  -- hold one, so only such a row reads the catalog. Before 18 no column is virtual.
  if row_data @? '$.* ? (@ == null)' then
    for col, expr in
      select a.attname,
             format('(%s)::%s', (select pg_get_expr(d.adbin, d.adrelid) from pg_attrdef d
                                  where d.adrelid = a.attrelid and d.adnum = a.attnum),
                    format_type(a.atttypid, a.atttypmod))
        from pg_attribute a
       where a.attrelid = TG_RELID and a.attnum > 0 and a.attgenerated = 'v' and not a.attisdropped
    loop
      execute format('select to_jsonb(%s) from (select ($1).*) as %I', expr, TG_TABLE_NAME) into val using src;
      row_data := row_data || jsonb_build_object(col, val);
    end loop;
  end if;
  template_name := TG_ARGV[0];
  if TG_NARGS > 1 then
    begin
      o := TG_ARGV[1]::jsonb;
    exception when others then
      raise exception using errcode = '22023',
        message = format('mailer.enqueue_from_row on %I.%I: the second argument must be JSON options', TG_TABLE_SCHEMA, TG_TABLE_NAME);
    end;
    perform mailer.check_options(o, array['tenant', 'tenantColumn', 'priority', 'maxAttempts', 'columns']);
  end if;
  stored := row_data;
  if o ? 'columns' then
    if jsonb_typeof(o -> 'columns') is distinct from 'array' or jsonb_array_length(o -> 'columns') = 0
       or exists (select 1 from jsonb_array_elements(o -> 'columns') c where jsonb_typeof(c) <> 'string') then
      raise exception using errcode = '22023',
        message = format('mailer.enqueue_from_row: trigger %s on %I.%I: options.columns must be a non-empty array of column names, e.g. ["name", "email"]',
                         TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME);
    end if;
    -- Every other column is left out (jsonb ? text: a string element of the array).
    stored := row_data - array(select k from jsonb_object_keys(row_data) k where not (o -> 'columns') ? k);
  end if;
  if not exists (select 1 from mailer.templates where name = template_name) then
    raise exception using errcode = '22023',
      message = format('mailer: unknown template "%s" (trigger %s on %I.%I); insert it into mailer.templates first',
                       template_name, TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME);
  end if;
  -- Held to enqueue's options.correlationId (1-200 characters); a longer one is left out: the
  -- correlation index takes an entry when the row is settled, and past its size limit that failed.
  correlation := format('%s.%s:%s', TG_TABLE_SCHEMA, TG_TABLE_NAME, coalesce(row_data ->> 'id', '?'));
  if length(correlation) > 200 then
    correlation := null;
  end if;
  -- Held to 200 characters, as enqueue's tenant (email_outbox_tenant_check): a longer column value
  -- keeps its first 130 and its SHA-256, still its own, still no tenant token's (… is no tenant
  -- character). Past about 2.7 kB the deploy guide's tenant index refused it when its row was
  -- settled, failing the settlement of every row claimed with it, which were then sent again.
  tenant_value := coalesce(row_data ->> (o ->> 'tenantColumn'), o ->> 'tenant', 'default');
  if char_length(tenant_value) > 200 then
    tenant_value := format('%s…%s', left(tenant_value, 130),
                           encode(sha256(convert_to(tenant_value, 'UTF8')), 'hex'));
  end if;
  insert into mailer.email_outbox (tenant, priority, max_attempts, correlation_id, template, source_row)
  values (tenant_value, coalesce((o ->> 'priority')::smallint, 0), (o ->> 'maxAttempts')::integer,
          correlation, template_name, stored);
  return null;
end $$;

--! split
-- Otherwise as in its last version; it keeps its privileges and owner.
create or replace function mailer.settle_verdict(
  kind text, refund boolean, delay_ms float8, created_at timestamptz, expires_at timestamptz,
  attempts_after integer, max_attempts integer, throttle_deadline_seconds float8
) returns text language sql stable as $$
  select case
    when kind <> 'retry' then kind
    when expires_at is not null and now() + make_interval(secs => delay_ms / 1000::float8) >= expires_at then 'expired'
    when refund and created_at + make_interval(secs => throttle_deadline_seconds) <= now() then 'throttled_out'
    when attempts_after >= max_attempts then 'exhausted'
    else 'retry'
  end
$$;

--! split
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
--! split
-- Added once: a rerun after a failed VALIDATE finds it (and takes no table lock for it again).
do $$
begin
  if not exists (select 1 from pg_constraint
                  where conrelid = 'mailer.email_outbox'::regclass
                    and conname = 'email_outbox_tenant_check') then
    alter table mailer.email_outbox
      add constraint email_outbox_tenant_check check (char_length(tenant) <= 200) not valid;
  end if;
end $$;
--! split
update mailer.email_outbox
   set tenant = format('%s…%s', left(tenant, 130), encode(sha256(convert_to(tenant, 'UTF8')), 'hex'))
 where char_length(tenant) > 200;
--! split
alter table mailer.email_outbox validate constraint email_outbox_tenant_check;
