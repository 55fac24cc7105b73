-- 0020: mailer.enqueue_email refuses an attachment contentType that is not a MIME type, and never
-- returns NULL for a repeated dedupe key whose row is deleted meanwhile.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- mailer.normalize_message. Why: contentType was checked to be a string only, and it is written as
-- the attachment part's Content-Type header: "text/plain\r\nX-Evil: 1" was stored, and the file
-- transport wrote "Content-Type: text/plainX-Evil: 1" (nodemailer drops the line break; Graph got
-- the value as it was). Now it must be type/subtype with optional ; name=value parameters, in
-- RFC 2045 token syntax (a parameter value a token or a quoted string of printable ASCII): no
-- space inside a token, no control character anywhere. null stays accepted (the default type).
-- Otherwise as in 0015; mailer.normalize_message keeps its privileges and owner.
--
-- mailer.enqueue_email. Why: a repeated dedupe key found its row in two statements, the insert's
-- conflict check and then a select; a transaction that deleted the row and committed in between
-- (deploy/prune-finished.sql deletes finished rows) left the select empty, and the function
-- returned NULL (through the API, 200 {"id": null}). Now it inserts again when the select finds
-- nothing: the key is free then, so the repeat becomes a new row, as the prune script says a key
-- whose row it deleted does. Otherwise as in 0011; its privileges and comment are kept.
--
-- Both reject or change nothing older binaries rely on: they call the functions as before.
--! older-binaries-compatible

-- RFC 2045 section 5.1; the same pattern as MIME_TYPE in src/api/mime-type.ts.
create function mailer.is_mime_type(t text) returns boolean language sql immutable parallel safe as $$
  select t ~ ('^[!#$%&''*+.^_`{|}~0-9A-Za-z-]+/[!#$%&''*+.^_`{|}~0-9A-Za-z-]+'
      || '( *; *[!#$%&''*+.^_`{|}~0-9A-Za-z-]+=([!#$%&''*+.^_`{|}~0-9A-Za-z-]+|"([\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"))* *$')
$$;

create or replace function mailer.normalize_message(m jsonb) returns jsonb language plpgsql immutable as $$
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
