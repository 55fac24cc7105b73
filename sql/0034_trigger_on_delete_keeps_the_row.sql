-- 0034: mailer.enqueue_from_row attached AFTER DELETE stores the row deleted, as AFTER UPDATE stores the row as updated.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: the trigger stored NEW, which a DELETE trigger does not have (NULL): attached AFTER DELETE
-- (a mail when an order is cancelled by deleting it) it queued a row with no source row and the
-- correlation id "schema.table:?", which every send then failed with template_error "placeholder
-- {{id}} has no column": nothing said at the delete, a failed mail naming a column the table has.
-- Now a DELETE trigger stores OLD, the row deleted, and names it in the correlation id; INSERT and
-- UPDATE store NEW as before. BEFORE and FOR EACH STATEMENT are still refused.
-- Otherwise as in 0027; the function keeps its privileges and owner.
--
-- Older binaries render and send such a row as any trigger row.
--! older-binaries-compatible
create or replace function mailer.enqueue_from_row() returns trigger language plpgsql as $$
declare
  template_name text;
  o jsonb := '{}';
  row_data jsonb;
  stored jsonb;
  correlation text;
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
    row_data := to_jsonb(OLD);
  else
    row_data := to_jsonb(NEW);
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
  insert into mailer.email_outbox (tenant, priority, max_attempts, correlation_id, template, source_row)
  values (coalesce(row_data ->> (o ->> 'tenantColumn'), o ->> 'tenant', 'default'),
          coalesce((o ->> 'priority')::smallint, 0), (o ->> 'maxAttempts')::integer,
          correlation, template_name, stored);
  return null;
end $$;
