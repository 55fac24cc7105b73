-- 0028: mailer.enqueue_email reads each attachment once instead of parsing it again for every check.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- mailer.normalize_message. Why: its loop over message.attachments took each attachment as text
-- and cast it back to jsonb for every check (about 14 casts), each a full parse of the attachment's
-- JSON, base64 content included. An enqueue with one attachment of 1 MB held the caller's
-- transaction (the application's own, with its row locks) for 0.26-0.27 s, 3 MB for 0.73-0.82 s;
-- through POST /v1/outbox (4 MB body, 5 s limit) the same. Now the loop takes each attachment as
-- jsonb and reads its fields in place: 1 MB 0.09-0.11 s, 3 MB 0.24-0.33 s, what is left being the
-- message's own parse and the base64 pattern, once (medians of 7 calls of normalize_message, two
-- runs, Postgres 18 on the shared 2-core machine at load 5).
-- Same checks, order, messages and result; otherwise as in 0024; the function keeps its privileges
-- and owner.
--
-- Older binaries call it as before.
--! older-binaries-compatible
create or replace function mailer.normalize_message(m jsonb) returns jsonb language plpgsql immutable as $$
declare
  k text;
  out jsonb;
  n int;
  folded_subject text;
  att jsonb;
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
    -- Each attachment as jsonb, read in place: taken as text and cast back for every check, it was
    -- parsed again each time, its base64 content included.
    for att in select value from jsonb_array_elements(m -> 'attachments') loop
      if jsonb_typeof(att) <> 'object'
         or exists (select 1 from jsonb_object_keys(att) x where x not in ('filename', 'contentType', 'contentBase64', 'contentId'))
         or jsonb_typeof(att -> 'filename') is distinct from 'string' or length(att ->> 'filename') = 0
         or jsonb_typeof(att -> 'contentBase64') is distinct from 'string'
         or (att ->> 'contentBase64') !~ '^[A-Za-z0-9+/\s]*={0,2}\s*$'
         or coalesce(jsonb_typeof(att -> 'contentType'), 'null') not in ('string', 'null')
         or coalesce(jsonb_typeof(att -> 'contentId'), 'null') not in ('string', 'null') then
        perform mailer.invalid(format('message.attachments[%s]', n),
          'must be {"filename", "contentBase64", "contentType"?, "contentId"?} with base64 content');
      end if;
      -- Written into the part's Content-Type header (and Graph's contentType) as it is.
      if not mailer.is_mime_type(coalesce(att ->> 'contentType', 'text/plain')) then
        perform mailer.invalid(format('message.attachments[%s].contentType', n),
          'must be a MIME type: type/subtype, then optional ; name=value parameters (e.g. text/plain; charset=utf-8)');
      end if;
      -- The file name and content id become header parameters (and Graph's name and contentId).
      if (att ->> 'filename') ~ '[\x01-\x1f\x7f]' then
        perform mailer.invalid(format('message.attachments[%s].filename', n),
          'must not contain a control character (such as a line break or a tab)');
      end if;
      if (att ->> 'contentId') ~ '[\x01-\x1f\x7f]' then
        perform mailer.invalid(format('message.attachments[%s].contentId', n),
          'must not contain a control character (such as a line break or a tab)');
      end if;
      n := n + 1;
    end loop;
    out := out || jsonb_build_object('attachments', m -> 'attachments');
  end if;
  return out;
end $$;
