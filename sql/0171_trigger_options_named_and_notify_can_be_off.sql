-- 0171: a trigger's options that enqueue_from_row refuses fail the insert naming the trigger and its
-- table; a transaction may enqueue without a NOTIFY (mailer.notify = off), so that it can be prepared.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why:
-- - The options a trigger is created with are checked at each insert (Postgres keeps a trigger's
--   arguments as text it never reads). A refused one failed the application's insert with
--   check_options' bare "mailer: options.sendAt is not a known option (tenant, tenantColumn,
--   priority, maxAttempts, columns)": the application, which passed no options, was told of none
--   it wrote, and a table with several triggers did not say which. It now reads
--   "mailer.enqueue_from_row: trigger orders_mail on public.orders: options.sendAt is not a known
--   option (…)", as a refused "columns" option (0026) and a trigger attached BEFORE (0013)
--   already did; so do a second argument that is not JSON and a trigger created with no argument
--   ("needs a template name argument"), which named the table but not the trigger. SQLSTATE stays
--   22023. The cast and the check share one exception block, the one the cast had, so a trigger
--   with options pays no second subtransaction per row. enqueue_from_row
--   otherwise as in 0050 (pinned settings; it keeps its privileges and owner).
-- - PREPARE TRANSACTION (two-phase commit: an application under an XA/JTA transaction manager)
--   refuses a transaction that has sent a NOTIFY (0A000), and every insert into mailer.email_outbox
--   sent one (notify_outbox, a wake-up hint): such an application could neither enqueue nor insert
--   into a table carrying the trigger. With `set local mailer.notify = off` the statement trigger
--   sends none; the row is claimed at the workers' next poll (POLL_INTERVAL_SECONDS), or at once
--   after a `select pg_notify('mailer_outbox', '')` once the transaction is committed. Any other
--   value, or none, notifies as before. notify_outbox otherwise as in 0030 (0050's settings; owner).
--
-- Older binaries never call enqueue_from_row (the application's inserts do): only the refusal's
-- text changes. They hear the same notifications, and none from a transaction that turned them off,
-- whose rows their poll finds.
--! older-binaries-compatible

create or replace function mailer.enqueue_from_row() returns trigger language plpgsql
  set search_path = pg_catalog, pg_temp set standard_conforming_strings = on as $$
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
      message = format('mailer.enqueue_from_row: trigger %s on %I.%I: needs a template name argument, e.g. enqueue_from_row(''inquiry'')',
                       TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME);
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
    -- One block for both, so the options cost no subtransaction of their own per row: the cast
    -- refuses with 22P02, check_options (mailer.invalid) with 22023, "mailer: <field> <problem>".
    begin
      o := TG_ARGV[1]::jsonb;
      perform mailer.check_options(o, array['tenant', 'tenantColumn', 'priority', 'maxAttempts', 'columns']);
    exception
      when invalid_parameter_value then
        raise exception using errcode = '22023',
          message = format('mailer.enqueue_from_row: trigger %s on %I.%I: %s', TG_NAME, TG_TABLE_SCHEMA,
                           TG_TABLE_NAME, regexp_replace(sqlerrm, '^mailer: ', ''));
      when others then
        raise exception using errcode = '22023',
          message = format('mailer.enqueue_from_row: trigger %s on %I.%I: the second argument must be JSON options, e.g. ''{"tenant": "acme"}''',
                           TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME);
    end;
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

create or replace function mailer.notify_outbox() returns trigger language plpgsql
  set search_path = pg_catalog, pg_temp set standard_conforming_strings = on as $$
declare
  noted text := coalesce(current_setting('mailer.outbox_inserted', true), '');
begin
  -- Off for a transaction to be prepared, which may not NOTIFY: its rows wait for a poll.
  if lower(coalesce(current_setting('mailer.notify', true), '')) in ('off', 'false') then
    return null;
  end if;
  perform pg_notify('mailer_outbox', case when noted = '-' then '' else noted end);
  return null;
end $$;
