-- 0001: the mailer schema: outbox, attempt history, templates, worker registry, enqueue functions.
-- Forward-only. Never edit this file after release: add a new numbered file instead.

create schema if not exists mailer;

create table mailer.email_outbox (
  id                  bigint generated always as identity primary key,
  tenant              text        not null default 'default',
  dedupe_key          text,
  status              text        not null default 'pending',
  priority            smallint    not null default 0,
  send_at             timestamptz not null default now(),
  expires_at          timestamptz,
  attempts            integer     not null default 0,
  max_attempts        integer,
  last_error_code     text,
  last_error          text,
  created_at          timestamptz not null default now(),
  sent_at             timestamptz,
  correlation_id      text,
  -- Exactly one of: a message given to enqueue_email, or a template + the source row a trigger saw.
  message             jsonb,
  template            text,
  source_row          jsonb,
  -- Lease: set by a claim, fenced on every later write. None of these columns is indexed, so a
  -- heartbeat (lease_expires_at only) stays a HOT update.
  lease_owner         text,
  lease_token         uuid,
  lease_expires_at    timestamptz,
  send_started_at     timestamptz,
  cancel_requested_at timestamptz,
  constraint email_outbox_status_check
    check (status in ('pending', 'sending', 'sent', 'failed', 'cancelled')),
  constraint email_outbox_content_check
    check ((message is not null and template is null) or (message is null and template is not null)),
  constraint email_outbox_max_attempts_check check (max_attempts is null or max_attempts between 1 and 100),
  constraint email_outbox_lease_check
    check ((status = 'sending') = (lease_token is not null and lease_expires_at is not null)),
  constraint email_outbox_expiry_check check (expires_at is null or expires_at > send_at)
) with (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);

comment on table mailer.email_outbox is 'One row per e-mail. Written by mailer.enqueue_email / mailer.enqueue_from_row, drained by outbox-mailer.';

-- Serves exactly the claim: status = 'pending' and send_at <= now() order by priority, send_at, id.
create index email_outbox_claim_idx on mailer.email_outbox (priority, send_at, id) where status = 'pending';
-- Serves reclaiming expired leases; tiny because only in-flight rows are in it.
create index email_outbox_sending_idx on mailer.email_outbox (id) where status = 'sending';
-- A dedupe key is unique per tenant.
create unique index email_outbox_dedupe_idx on mailer.email_outbox (tenant, dedupe_key) where dedupe_key is not null;

-- One row per attempt. No foreign key on purpose: rows are only ever inserted by the statements that
-- settle or reclaim their outbox row (integrity by construction), and a per-row RI check would double
-- the cost of settling a batch. Whoever deletes outbox rows deletes their attempts in the same statement.
create table mailer.email_attempts (
  id           bigint generated always as identity,
  outbox_id    bigint      not null,
  attempt      integer     not null,
  worker_id    text,
  started_at   timestamptz,
  finished_at  timestamptz not null default now(),
  outcome      text        not null,
  http_status  integer,
  request_id   text,
  error_code   text,
  error        text,
  constraint email_attempts_outcome_check
    check (outcome in ('sent', 'retry', 'throttled', 'failed', 'expired', 'cancelled', 'lease_expired', 'released')),
  -- One index serves both identity and "the history of row N, in order".
  constraint email_attempts_pkey primary key (outbox_id, id)
);

create table mailer.templates (
  name          text primary key,
  subject       text   not null,
  text_body     text,
  html_body     text,
  to_addresses  text[] not null default '{}',
  cc_addresses  text[] not null default '{}',
  bcc_addresses text[] not null default '{}',
  reply_to      text,
  from_address  text,
  created_at    timestamptz not null default now(),
  updated_at    timestamptz not null default now(),
  constraint templates_name_check check (name ~ '^[A-Za-z0-9_.:-]{1,100}$'),
  constraint templates_subject_check check (length(btrim(subject)) > 0),
  constraint templates_body_check check (text_body is not null or html_body is not null),
  constraint templates_recipient_check
    check (cardinality(to_addresses) + cardinality(cc_addresses) + cardinality(bcc_addresses) > 0)
);

create table mailer.workers (
  id                text primary key,
  host              text        not null,
  pid               integer     not null,
  version           text        not null,
  started_at        timestamptz not null default now(),
  last_heartbeat_at timestamptz not null default now()
);

-- The fate of a settled lease (inlined into the settle statement): a retry ends the row when it stayed
-- throttled past the deadline or would land after expires_at (a throttled row then fails as throttled,
-- any other as expired), or has no attempts left.
create function mailer.settle_verdict(
  kind text, refund boolean, delay_ms float8, created_at timestamptz, expires_at timestamptz,
  attempts_after integer, max_attempts integer, throttle_deadline_seconds float8
) returns text language sql stable as $$
  select case
    when kind <> 'retry' then kind
    when refund and (created_at + make_interval(secs => throttle_deadline_seconds) <= now()
                     or now() + make_interval(secs => delay_ms / 1000) >= expires_at) then 'throttled_out'
    when expires_at is not null and now() + make_interval(secs => delay_ms / 1000) >= expires_at then 'expired'
    when attempts_after >= max_attempts then 'exhausted'
    else 'retry'
  end
$$;

-- Wake-up hint only: no data travels in a notification, and a statement's burst folds into one.
create function mailer.notify_outbox() returns trigger language plpgsql as $$
begin
  perform pg_notify('mailer_outbox', '');
  return null;
end $$;

create trigger email_outbox_notify after insert on mailer.email_outbox
  for each statement execute function mailer.notify_outbox();

-- Raises invalid_parameter_value with a message that names the field.
create function mailer.invalid(field text, problem text) returns void language plpgsql as $$
begin
  raise exception using errcode = '22023', message = format('mailer: %s %s', field, problem);
end $$;

create function mailer.is_email_address(a text) returns boolean language sql immutable as $$
  select a is not null and length(a) <= 320
     and a ~ '^[^@\s<>(),;:"\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$'
$$;

-- One recipient ("a@b.c" or {"address","name"}) or an array of them -> [{"address","name"?}].
create function mailer.normalize_recipients(v jsonb, field text) returns jsonb language plpgsql immutable as $$
declare
  item jsonb;
  i int := 0;
  out jsonb := '[]';
  addr text;
begin
  if v is null or v = 'null'::jsonb then return '[]'; end if;
  if jsonb_typeof(v) <> 'array' then v := jsonb_build_array(v); end if;
  for item in select value from jsonb_array_elements(v) loop
    if jsonb_typeof(item) = 'string' then
      addr := btrim(item #>> '{}');
      if not mailer.is_email_address(addr) then
        perform mailer.invalid(format('%s[%s]', field, i), 'is not a valid e-mail address');
      end if;
      out := out || jsonb_build_array(jsonb_build_object('address', addr));
    elsif jsonb_typeof(item) = 'object' then
      if exists (select 1 from jsonb_object_keys(item) k where k not in ('address', 'name')) then
        perform mailer.invalid(format('%s[%s]', field, i), 'may only have the keys address and name');
      end if;
      addr := btrim(item ->> 'address');
      if jsonb_typeof(item -> 'address') is distinct from 'string' or not mailer.is_email_address(addr) then
        perform mailer.invalid(format('%s[%s].address', field, i), 'is not a valid e-mail address');
      end if;
      if item ? 'name' and jsonb_typeof(item -> 'name') not in ('string', 'null') then
        perform mailer.invalid(format('%s[%s].name', field, i), 'must be a string');
      end if;
      out := out || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object('address', addr, 'name', item ->> 'name')));
    else
      perform mailer.invalid(format('%s[%s]', field, i), 'must be an address string or {"address","name"}');
    end if;
    i := i + 1;
  end loop;
  return out;
end $$;

-- Validates and normalises a message: recipients become arrays of {address,name}; unknown keys are errors.
create function mailer.normalize_message(m jsonb) returns jsonb language plpgsql immutable as $$
declare
  k text;
  out jsonb;
  n int;
begin
  if m is null or jsonb_typeof(m) <> 'object' then
    perform mailer.invalid('message', 'must be a JSON object');
  end if;
  for k in select jsonb_object_keys(m) loop
    if k not in ('from', 'to', 'cc', 'bcc', 'replyTo', 'subject', 'text', 'html', 'headers', 'attachments', 'importance') then
      perform mailer.invalid(format('message.%s', k), 'is not a known key (from, to, cc, bcc, replyTo, subject, text, html, headers, attachments, importance)');
    end if;
  end loop;
  out := jsonb_build_object(
    'to', mailer.normalize_recipients(m -> 'to', 'message.to'),
    'cc', mailer.normalize_recipients(m -> 'cc', 'message.cc'),
    'bcc', mailer.normalize_recipients(m -> 'bcc', 'message.bcc'),
    'replyTo', mailer.normalize_recipients(m -> 'replyTo', 'message.replyTo'));
  if jsonb_array_length(out -> 'to') + jsonb_array_length(out -> 'cc') + jsonb_array_length(out -> 'bcc') = 0 then
    perform mailer.invalid('message.to', 'is required: a message needs at least one recipient in to, cc or bcc');
  end if;
  if jsonb_array_length(out -> 'to') + jsonb_array_length(out -> 'cc') + jsonb_array_length(out -> 'bcc') > 500 then
    perform mailer.invalid('message.to', 'has too many recipients (at most 500 in to, cc and bcc together)');
  end if;
  if m ? 'from' and m -> 'from' <> 'null'::jsonb then
    if jsonb_typeof(m -> 'from') = 'array' then perform mailer.invalid('message.from', 'must be a single address'); end if;
    out := out || jsonb_build_object('from', mailer.normalize_recipients(m -> 'from', 'message.from') -> 0);
  end if;
  if jsonb_typeof(m -> 'subject') is distinct from 'string' or length(btrim(m ->> 'subject')) = 0 then
    perform mailer.invalid('message.subject', 'is required and must be a non-empty string');
  end if;
  if length(m ->> 'subject') > 998 or (m ->> 'subject') ~ '[\r\n]' then
    perform mailer.invalid('message.subject', 'must be one line of at most 998 characters');
  end if;
  out := out || jsonb_build_object('subject', m -> 'subject');
  if m ? 'text' and jsonb_typeof(m -> 'text') not in ('string', 'null') then
    perform mailer.invalid('message.text', 'must be a string');
  end if;
  if m ? 'html' and jsonb_typeof(m -> 'html') not in ('string', 'null') then
    perform mailer.invalid('message.html', 'must be a string');
  end if;
  if coalesce(m ->> 'text', m ->> 'html') is null then
    perform mailer.invalid('message.text', 'or message.html is required');
  end if;
  out := out || jsonb_strip_nulls(jsonb_build_object('text', m -> 'text', 'html', m -> 'html'));
  if m ? 'importance' and m -> 'importance' <> 'null'::jsonb then
    if (m ->> 'importance') not in ('low', 'normal', 'high') then
      perform mailer.invalid('message.importance', 'must be low, normal or high');
    end if;
    out := out || jsonb_build_object('importance', m -> 'importance');
  end if;
  if m ? 'headers' and m -> 'headers' <> 'null'::jsonb then
    if jsonb_typeof(m -> 'headers') <> 'object' then
      perform mailer.invalid('message.headers', 'must be an object of "X-Name": "value"');
    end if;
    select count(*) into n from jsonb_object_keys(m -> 'headers');
    if n > 3 then
      perform mailer.invalid('message.headers', 'may hold at most 3 headers (X-Outbox-Id and X-Correlation-Id are added)');
    end if;
    for k in select jsonb_object_keys(m -> 'headers') loop
      if k !~ '^[Xx]-[A-Za-z0-9-]{1,70}$' or lower(k) in ('x-outbox-id', 'x-correlation-id') then
        perform mailer.invalid(format('message.headers.%s', k), 'must be an X- header name other than X-Outbox-Id and X-Correlation-Id');
      end if;
      if jsonb_typeof(m -> 'headers' -> k) <> 'string' or (m -> 'headers' ->> k) ~ '[\r\n]' then
        perform mailer.invalid(format('message.headers.%s', k), 'must be a one-line string');
      end if;
    end loop;
    out := out || jsonb_build_object('headers', m -> 'headers');
  end if;
  if m ? 'attachments' and m -> 'attachments' <> 'null'::jsonb then
    if jsonb_typeof(m -> 'attachments') <> 'array' then
      perform mailer.invalid('message.attachments', 'must be an array');
    end if;
    n := 0;
    for k in select value::text from jsonb_array_elements(m -> 'attachments') loop
      if jsonb_typeof(k::jsonb) <> 'object'
         or exists (select 1 from jsonb_object_keys(k::jsonb) x where x not in ('filename', 'contentType', 'contentBase64', 'contentId'))
         or jsonb_typeof(k::jsonb -> 'filename') is distinct from 'string' or length(k::jsonb ->> 'filename') = 0
         or jsonb_typeof(k::jsonb -> 'contentBase64') is distinct from 'string'
         or (k::jsonb ->> 'contentBase64') !~ '^[A-Za-z0-9+/\s]*={0,2}\s*$' then
        perform mailer.invalid(format('message.attachments[%s]', n),
          'must be {"filename", "contentBase64", "contentType"?, "contentId"?} with base64 content');
      end if;
      n := n + 1;
    end loop;
    out := out || jsonb_build_object('attachments', m -> 'attachments');
  end if;
  return out;
end $$;

-- Validated options as a record the inserts below use.
create function mailer.check_options(o jsonb, allowed text[]) returns void language plpgsql stable as $$
declare
  k text;
begin
  if o is null or jsonb_typeof(o) <> 'object' then
    perform mailer.invalid('options', 'must be a JSON object');
  end if;
  for k in select jsonb_object_keys(o) loop
    if not k = any (allowed) then
      perform mailer.invalid(format('options.%s', k), format('is not a known option (%s)', array_to_string(allowed, ', ')));
    end if;
  end loop;
  if o ? 'tenant' and (jsonb_typeof(o -> 'tenant') <> 'string' or (o ->> 'tenant') !~ '^[A-Za-z0-9_.:-]{1,200}$') then
    perform mailer.invalid('options.tenant', 'must be 1-200 characters of A-Z a-z 0-9 _ . : -');
  end if;
  if o ? 'dedupeKey' and (jsonb_typeof(o -> 'dedupeKey') <> 'string' or length(o ->> 'dedupeKey') not between 1 and 500) then
    perform mailer.invalid('options.dedupeKey', 'must be a string of 1-500 characters');
  end if;
  if o ? 'correlationId' and (jsonb_typeof(o -> 'correlationId') <> 'string' or length(o ->> 'correlationId') not between 1 and 200) then
    perform mailer.invalid('options.correlationId', 'must be a string of 1-200 characters');
  end if;
  if o ? 'priority' and (jsonb_typeof(o -> 'priority') <> 'number' or (o ->> 'priority') !~ '^-?\d+$'
                         or (o ->> 'priority')::numeric not between -100 and 100) then
    perform mailer.invalid('options.priority', 'must be an integer from -100 (first) to 100 (last)');
  end if;
  if o ? 'maxAttempts' and (jsonb_typeof(o -> 'maxAttempts') <> 'number' or (o ->> 'maxAttempts') !~ '^\d+$'
                            or (o ->> 'maxAttempts')::numeric not between 1 and 100) then
    perform mailer.invalid('options.maxAttempts', 'must be an integer from 1 to 100');
  end if;
  foreach k in array array['sendAt', 'expiresAt'] loop
    if o ? k and o -> k <> 'null'::jsonb then
      if jsonb_typeof(o -> k) <> 'string'
         or (o ->> k) !~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}(:?\d{2})?)$' then
        perform mailer.invalid(format('options.%s', k), 'must be an ISO-8601 timestamp with a time zone, e.g. 2030-01-01T09:00:00Z');
      end if;
      begin
        perform (o ->> k)::timestamptz;
      exception when others then
        perform mailer.invalid(format('options.%s', k), 'is not a valid timestamp');
      end;
    end if;
  end loop;
  if coalesce((o ->> 'expiresAt')::timestamptz <= coalesce((o ->> 'sendAt')::timestamptz, now()), false) then
    perform mailer.invalid('options.expiresAt', 'must be later than sendAt (or now)');
  end if;
end $$;

create function mailer.enqueue_email(message jsonb, options jsonb default '{}') returns bigint
language plpgsql as $$
declare
  m jsonb := mailer.normalize_message(message);
  o jsonb := coalesce(options, '{}');
  t text;
  new_id bigint;
begin
  perform mailer.check_options(o, array['tenant', 'dedupeKey', 'sendAt', 'expiresAt', 'priority', 'maxAttempts', 'correlationId']);
  t := coalesce(o ->> 'tenant', 'default');
  insert into mailer.email_outbox (tenant, dedupe_key, priority, send_at, expires_at, max_attempts, correlation_id, message)
  values (t, o ->> 'dedupeKey', coalesce((o ->> 'priority')::smallint, 0),
          coalesce((o ->> 'sendAt')::timestamptz, now()), (o ->> 'expiresAt')::timestamptz,
          (o ->> 'maxAttempts')::integer, o ->> 'correlationId', m)
  on conflict (tenant, dedupe_key) where dedupe_key is not null do nothing
  returning id into new_id;
  if new_id is null then
    -- The conflicting row is committed (on conflict waited for it), so this finds it.
    select id into new_id from mailer.email_outbox where tenant = t and dedupe_key = o ->> 'dedupeKey';
  end if;
  return new_id;
end $$;

comment on function mailer.enqueue_email(jsonb, jsonb) is
  'Enqueue one e-mail. message: {from,to,cc,bcc,replyTo,subject,text,html,headers,attachments,importance}; options: {tenant,dedupeKey,sendAt,expiresAt,priority,maxAttempts,correlationId}. A repeated dedupe key (per tenant) returns the existing id.';

-- Trigger function: store the template name and the source row; the worker renders.
-- Usage: create trigger ... after insert on public.inquiries for each row
--        execute function mailer.enqueue_from_row('inquiry' [, '{"tenant":"acme","priority":0,"maxAttempts":5}']);
create function mailer.enqueue_from_row() returns trigger language plpgsql as $$
declare
  template_name text;
  o jsonb := '{}';
  row_data jsonb := to_jsonb(NEW);
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
  insert into mailer.email_outbox (tenant, priority, max_attempts, correlation_id, template, source_row)
  values (coalesce(row_data ->> (o ->> 'tenantColumn'), o ->> 'tenant', 'default'),
          coalesce((o ->> 'priority')::smallint, 0), (o ->> 'maxAttempts')::integer,
          format('%s.%s:%s', TG_TABLE_SCHEMA, TG_TABLE_NAME, coalesce(row_data ->> 'id', '?')),
          template_name, row_data);
  return null;
end $$;
