-- 0013: mailer.enqueue_from_row refuses to run as a BEFORE or a FOR EACH STATEMENT trigger.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: attached BEFORE INSERT, its NULL return told Postgres to skip the row: the application's
-- insert reported success, its row was silently dropped, and a mail about that row was queued.
-- Attached FOR EACH STATEMENT it queued, per statement, a mail with no source row (a template with
-- placeholders then failed at send time, one without went out). Now either fails the statement
-- with SQLSTATE 22023 naming the trigger, its table and how it is attached. As an AFTER … FOR EACH
-- ROW trigger, as documented, it works as before, and so does an INSTEAD OF trigger on a view (it
-- keeps no row to drop); mailer.enqueue_from_row keeps its privileges.
--! older-binaries-compatible
create or replace function mailer.enqueue_from_row() returns trigger language plpgsql as $$
declare
  template_name text;
  o jsonb := '{}';
  row_data jsonb := to_jsonb(NEW);
begin
  if TG_WHEN = 'BEFORE' or TG_LEVEL <> 'ROW' then
    raise exception using errcode = '22023',
      message = format('mailer.enqueue_from_row: trigger %s on %I.%I must be an AFTER … FOR EACH ROW trigger (AFTER INSERT, as documented), not %s %s FOR EACH %s',
                       TG_NAME, TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_WHEN, TG_OP, TG_LEVEL);
  end if;
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
  insert into mailer.email_outbox (tenant, priority, max_attempts, correlation_id, template, source_row)
  values (coalesce(row_data ->> (o ->> 'tenantColumn'), o ->> 'tenant', 'default'),
          coalesce((o ->> 'priority')::smallint, 0), (o ->> 'maxAttempts')::integer,
          format('%s.%s:%s', TG_TABLE_SCHEMA, TG_TABLE_NAME, coalesce(row_data ->> 'id', '?')),
          template_name, row_data);
  return null;
end $$;
