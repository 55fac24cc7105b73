-- 0026: mailer.enqueue_from_row takes a "columns" option: the source row it stores holds only those columns.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: the trigger stored the whole inserted row (to_jsonb(NEW)) as the mail's source_row, which is
-- kept as long as the outbox row (outbox-mailer never deletes one) and returned by
-- GET /v1/outbox/{id} to any token that may read the row. Attached to a table that also holds a
-- password hash, an access token or personal data the mail never shows, it copied them there; the
-- only way around was a table or view of its own. Now '{"columns": ["name", "email"]}' keeps only
-- the named columns (a named column the table lacks is left out: a placeholder naming it then fails
-- that mail at send with template_error, as for any missing column, never the application's insert).
-- The tenant (tenantColumn) and the correlation id (the row's id) are still read from the whole
-- row. A "columns" that is not a non-empty array of strings is a wrong trigger definition: every
-- insert fails with 22023 naming the trigger and the option, as bad JSON options always did.
-- Without the option the whole row is stored, as before. Otherwise as in 0013; the function keeps
-- its privileges and owner.
--
-- Older binaries render from source_row as before; a row stored with fewer columns renders alike
-- for a template that names only those.
--! older-binaries-compatible
create or replace function mailer.enqueue_from_row() returns trigger language plpgsql as $$
declare
  template_name text;
  o jsonb := '{}';
  row_data jsonb := to_jsonb(NEW);
  stored jsonb;
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
  insert into mailer.email_outbox (tenant, priority, max_attempts, correlation_id, template, source_row)
  values (coalesce(row_data ->> (o ->> 'tenantColumn'), o ->> 'tenant', 'default'),
          coalesce((o ->> 'priority')::smallint, 0), (o ->> 'maxAttempts')::integer,
          format('%s.%s:%s', TG_TABLE_SCHEMA, TG_TABLE_NAME, coalesce(row_data ->> 'id', '?')),
          template_name, stored);
  return null;
end $$;
