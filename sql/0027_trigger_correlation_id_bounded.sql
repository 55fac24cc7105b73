-- 0027: mailer.enqueue_from_row gives no correlation id when schema.table:id would pass 200 characters.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: the trigger wrote "schema.table:id" as the mail's correlation id whatever the row's id held,
-- while enqueue_email takes at most 200 characters. email_outbox_correlation_idx (0010) takes an
-- entry when a row becomes sent, failed or cancelled, and an entry past its size limit (about
-- 2.7 kB, after compression) fails the statement: a row whose id was a long text (not the table's
-- key, or within the key's own limit but not with the prefix) was sent, then its settlement failed
-- with every other row of its batch ("index row size ... exceeds btree version 4 maximum 2704 for
-- index email_outbox_correlation_idx"), the leases ran out and the reclaim sent them all again, over
-- and over; a cancel of such a row failed too. Now a correlation id longer than 200 characters is
-- left out (null: no X-Correlation-Id, not found by correlation id), as enqueue would refuse it;
-- the mail is sent and settled as any other. One of 200 or fewer is written as before.
-- Otherwise as in 0026; the function keeps its privileges and owner.
--
-- Older binaries send and settle such a row as any row without a correlation id.
--! older-binaries-compatible
create or replace function mailer.enqueue_from_row() returns trigger language plpgsql as $$
declare
  template_name text;
  o jsonb := '{}';
  row_data jsonb := to_jsonb(NEW);
  stored jsonb;
  correlation text;
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
