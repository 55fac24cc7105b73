-- 0024: any control character in a subject or a display name becomes a space, as a line break
-- does since 0023; a header value or a correlation id with one is refused.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: 0023 folded CR and LF only. Every other C0 control character (U+0001-U+001F: a vertical
-- tab, an escape sequence pasted from a terminal, a form feed) and DEL (U+007F) in a subject or a
-- display name was stored, then the MIME composer encoded it and Graph got it raw. A customer's
-- form field is the usual source, so folding keeps the inquiry where refusing would fail the
-- application's insert. Now each run of control characters (TAB, CR and LF included) becomes one
-- space, dropped at either end (mailer.fold_control_characters; a folded "CRLF TAB" continuation
-- reads as one space).
-- A header value (message.headers) is composed by the application, not typed by a customer: a
-- line break in one was refused since 0001, and now so is any control character but a tab
-- (whitespace in a header value). options.correlationId is an id users search by
-- (GET /v1/outbox?correlationId=) and is written into X-Correlation-Id: a control character in it
-- (tab included) is refused with 22023 naming the field, as an attachment's filename is.
-- mailer.fold_line_breaks stays for anything that calls it. The replaced functions keep their
-- privileges and owner; otherwise as in 0023 and 0020.
--
-- Older binaries call the functions as before; what they enqueue is refused in more cases (a
-- header value, a correlation id) and folded in more, never stored in a shape they cannot send.
--! older-binaries-compatible

-- A subject or a display name on one line; the same rule as foldControlCharacters in src/outbox/header-text.ts.
create function mailer.fold_control_characters(t text) returns text language sql immutable parallel safe as $$
  select regexp_replace(
    btrim(t, E'\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f\x7f'),
    '[\x01-\x1f\x7f]+', ' ', 'g')
$$;

create or replace function mailer.normalize_recipients(v jsonb, field text) returns jsonb language plpgsql immutable as $$
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
      out := out || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object('address', addr, 'name', mailer.fold_control_characters(item ->> 'name'))));
    else
      perform mailer.invalid(format('%s[%s]', field, i), 'must be an address string or {"address","name"}');
    end if;
    i := i + 1;
  end loop;
  return out;
end $$;

create or replace function mailer.normalize_message(m jsonb) returns jsonb language plpgsql immutable as $$
declare
  k text;
  out jsonb;
  n int;
  folded_subject text;
begin
  if m is null or jsonb_typeof(m) <> 'object' then
    perform mailer.invalid('message', 'must be a JSON object');
  end if;
  for k in select jsonb_object_keys(m) loop
    if k not in ('from', 'to', 'cc', 'bcc', 'replyTo', 'subject', 'text', 'html', 'headers', 'attachments', 'importance') then
      perform mailer.invalid(format('message.%s', k), 'is not a known key (from, to, cc, bcc, replyTo, subject, text, html, headers, attachments, importance)');
    end if;
  end loop;
  -- Counted before any of them is normalised, which takes time quadratic in their number; the
  -- reply-to addresses too.
  select coalesce(sum(case when v is null or v = 'null'::jsonb then 0
                           when jsonb_typeof(v) = 'array' then jsonb_array_length(v)
                           else 1 end), 0)
    into n
    from (values (m -> 'to'), (m -> 'cc'), (m -> 'bcc')) as r(v);
  if n > 500 then
    perform mailer.invalid('message.to', 'has too many recipients (at most 500 in to, cc and bcc together)');
  end if;
  if jsonb_typeof(m -> 'replyTo') = 'array' and jsonb_array_length(m -> 'replyTo') > 500 then
    perform mailer.invalid('message.replyTo', 'has too many addresses (at most 500)');
  end if;
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
  if jsonb_typeof(m -> 'subject') is distinct from 'string' then
    perform mailer.invalid('message.subject', 'is required and must be a non-empty string');
  end if;
  folded_subject := mailer.fold_control_characters(m ->> 'subject');
  if length(btrim(folded_subject)) = 0 then
    perform mailer.invalid('message.subject', 'is required and must be a non-empty string');
  end if;
  if length(folded_subject) > 998 then
    perform mailer.invalid('message.subject', 'must be at most 998 characters');
  end if;
  out := out || jsonb_build_object('subject', folded_subject);
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
      -- A tab is whitespace in a header value (RFC 5322); any other control character is refused.
      if jsonb_typeof(m -> 'headers' -> k) <> 'string' or (m -> 'headers' ->> k) ~ '[\x01-\x08\x0a-\x1f\x7f]' then
        perform mailer.invalid(format('message.headers.%s', k), 'must be a one-line string without control characters (a tab is allowed)');
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
         or (k::jsonb ->> 'contentBase64') !~ '^[A-Za-z0-9+/\s]*={0,2}\s*$'
         or coalesce(jsonb_typeof(k::jsonb -> 'contentType'), 'null') not in ('string', 'null')
         or coalesce(jsonb_typeof(k::jsonb -> 'contentId'), 'null') not in ('string', 'null') then
        perform mailer.invalid(format('message.attachments[%s]', n),
          'must be {"filename", "contentBase64", "contentType"?, "contentId"?} with base64 content');
      end if;
      -- Written into the part's Content-Type header (and Graph's contentType) as it is.
      if not mailer.is_mime_type(coalesce(k::jsonb ->> 'contentType', 'text/plain')) then
        perform mailer.invalid(format('message.attachments[%s].contentType', n),
          'must be a MIME type: type/subtype, then optional ; name=value parameters (e.g. text/plain; charset=utf-8)');
      end if;
      -- The file name and content id become header parameters (and Graph's name and contentId).
      if (k::jsonb ->> 'filename') ~ '[\x01-\x1f\x7f]' then
        perform mailer.invalid(format('message.attachments[%s].filename', n),
          'must not contain a control character (such as a line break or a tab)');
      end if;
      if (k::jsonb ->> 'contentId') ~ '[\x01-\x1f\x7f]' then
        perform mailer.invalid(format('message.attachments[%s].contentId', n),
          'must not contain a control character (such as a line break or a tab)');
      end if;
      n := n + 1;
    end loop;
    out := out || jsonb_build_object('attachments', m -> 'attachments');
  end if;
  return out;
end $$;

create or replace function mailer.enqueue_email(message jsonb, options jsonb default '{}') returns bigint
language plpgsql as $$
declare
  m jsonb := mailer.normalize_message(message);
  o jsonb := coalesce(options, '{}');
  t text;
  new_id bigint;
begin
  perform mailer.check_options(o, array['tenant', 'dedupeKey', 'sendAt', 'expiresAt', 'priority', 'maxAttempts', 'correlationId']);
  -- An id users search by (GET /v1/outbox?correlationId=), written into X-Correlation-Id.
  if (o ->> 'correlationId') ~ '[\x01-\x1f\x7f]' then
    perform mailer.invalid('options.correlationId', 'must not contain a control character (such as a line break or a tab)');
  end if;
  t := coalesce(o ->> 'tenant', 'default');
  -- check_options refuses a dedupeKey that is not a string, so null means none was given.
  if o ->> 'dedupeKey' is null then
    insert into mailer.email_outbox (tenant, priority, send_at, expires_at, max_attempts, correlation_id, message)
    values (t, coalesce((o ->> 'priority')::smallint, 0),
            coalesce((o ->> 'sendAt')::timestamptz, now()), (o ->> 'expiresAt')::timestamptz,
            (o ->> 'maxAttempts')::integer, o ->> 'correlationId', m)
    returning id into new_id;
    return new_id;
  end if;
  loop
    insert into mailer.email_outbox (tenant, dedupe_key, priority, send_at, expires_at, max_attempts, correlation_id, message)
    values (t, o ->> 'dedupeKey', coalesce((o ->> 'priority')::smallint, 0),
            coalesce((o ->> 'sendAt')::timestamptz, now()), (o ->> 'expiresAt')::timestamptz,
            (o ->> 'maxAttempts')::integer, o ->> 'correlationId', m)
    on conflict (tenant, dedupe_key) where dedupe_key is not null do nothing
    returning id into new_id;
    if new_id is not null then return new_id; end if;
    -- The conflict was a committed row (on conflict waited for it), found by email_outbox_dedupe_idx;
    -- missing only if a commit since deleted it (pruned): the key is free, so insert again.
    select id into new_id from mailer.email_outbox where tenant = t and dedupe_key = o ->> 'dedupeKey';
    if new_id is not null then return new_id; end if;
  end loop;
end $$;
