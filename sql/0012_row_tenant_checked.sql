-- 0012: mailer.enqueue_from_row checks the tenant it reads from the row, as enqueue_email checks its own.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: with '{"tenantColumn":"org"}' the tenant was whatever the column held: a value with spaces or
-- slashes, an empty string or 5,000 characters was stored, although options.tenant refuses all of
-- them (1-200 characters of A-Z a-z 0-9 _ . : -), and the API (tenant filters, a token's tenant
-- claim) can then never reach the row. A tenantColumn that named no column of the table, or was not
-- a string, silently gave every row the tenant 'default'. Now both fail the application's insert with
-- SQLSTATE 22023 naming the trigger, the table and the column, as an unknown template does. A column
-- that holds NULL for a row still falls back to options.tenant, then 'default' (as documented).
-- Everything else is as in 0001; `create or replace` keeps the function's privileges.
--! older-binaries-compatible
create or replace function mailer.enqueue_from_row() returns trigger language plpgsql as $$
declare
  template_name text;
  o jsonb := '{}';
  row_data jsonb := to_jsonb(NEW);
  tenant_column text;
  tenant text;
begin
  if TG_NARGS < 1 then
    raise exception using errcode = '22023',
      message = format('mailer.enqueue_from_row on %I.%I needs a template name argument', TG_TABLE_SCHEMA, TG_TABLE_NAME);
  end if;
  template_name := TG_ARGV[0];
  if TG_NARGS > 1 then
    begin
      o := TG_ARGV[1]::jsonb;
    exception when others then
      raise exception using errcode = '22023',
        message = format('mailer.enqueue_from_row on %I.%I: the second argument must be JSON options', TG_TABLE_SCHEMA, TG_TABLE_NAME);
    end;
    perform mailer.check_options(o, array['tenant', 'tenantColumn', 'priority', 'maxAttempts']);
  end if;
  if not exists (select 1 from mailer.templates where name = template_name) then
    raise exception using errcode = '22023',
      message = format('mailer: unknown template "%s" (trigger %s on %I.%I); insert it into mailer.templates first',
                       template_name, TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME);
  end if;
  if o ? 'tenantColumn' then
    if jsonb_typeof(o -> 'tenantColumn') <> 'string' or not row_data ? (o ->> 'tenantColumn') then
      raise exception using errcode = '22023',
        message = format('mailer.enqueue_from_row (trigger %s on %I.%I): options.tenantColumn must name a column of the table',
                         TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME);
    end if;
    tenant_column := o ->> 'tenantColumn';
    tenant := row_data ->> tenant_column;
    -- The value itself is the application's data: named by its column, never echoed.
    if tenant is not null and tenant !~ '^[A-Za-z0-9_.:-]{1,200}$' then
      raise exception using errcode = '22023',
        message = format('mailer.enqueue_from_row (trigger %s on %I.%I): the tenant in column %I must be 1-200 characters of A-Z a-z 0-9 _ . : -',
                         TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME, tenant_column);
    end if;
  end if;
  insert into mailer.email_outbox (tenant, priority, max_attempts, correlation_id, template, source_row)
  values (coalesce(tenant, o ->> 'tenant', 'default'),
          coalesce((o ->> 'priority')::smallint, 0), (o ->> 'maxAttempts')::integer,
          format('%s.%s:%s', TG_TABLE_SCHEMA, TG_TABLE_NAME, coalesce(row_data ->> 'id', '?')),
          template_name, row_data);
  return null;
end $$;
