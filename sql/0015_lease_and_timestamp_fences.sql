-- 0015: the last check before a send refuses a lease that has ended; enqueue_email refuses times
-- outside the years 0001-9999 (UTC) and more than 500 reply-to addresses.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- mailer.start_sends. Why: the last check before a send (0007) was fenced by (id, lease_token,
-- status = 'sending') only, so a lease whose expiry had passed but that no reclaim had taken yet
-- still passed it: the send was recorded as started and went out, while any worker's reclaim could
-- take the row mid-send (as ambiguous) and send it again. Now the lease must still be live in
-- database time (lease_expires_at > now(); a reclaim takes lease_expires_at < now()): a send starts
-- only under a lease that no reclaim may take yet, and its heartbeats keep it so.
-- A refused lease is left as it was: missing from the result, as a lost one always was. Its holder
-- does not send it; outbox-mailer from this release hands it back uncounted (a release fenced by
-- its token: nothing happens when another claim took the row meanwhile), and a reclaim takes it
-- otherwise, as an unstarted row. Binaries before this release treat it as lost: they do not
-- send it, and the reclaim then counts the attempt, as for any ended lease.
-- Same signature, result, plan (one more filter on the row the index scan already reads) and
-- privileges.
--! older-binaries-compatible
create or replace function mailer.start_sends(ids bigint[], tokens uuid[])
returns table (id bigint, started boolean, cancelled boolean, expired boolean)
language plpgsql volatile
set enable_seqscan = off
set enable_nestloop = off
set plan_cache_mode = force_generic_plan
as $$
begin
  return query
  with checked as (
    update mailer.email_outbox o
       set send_started_at = case
             when o.cancel_requested_at is null and (o.expires_at is null or o.expires_at > now()) then now()
           end
      from unnest(ids, tokens) as i(id, token)
     where o.id = any(ids) and o.id = i.id and o.lease_token = i.token and o.status = 'sending'
       and o.lease_expires_at > now()
    returning o.id, o.send_started_at is not null as started,
              o.cancel_requested_at is not null as cancelled,
              (o.expires_at is not null and o.expires_at <= now()) as expired
  )
  select c.id, c.started, c.cancelled, c.expired from checked c;
end $$;

-- mailer.check_options. Why: sendAt and expiresAt were checked for their form only, so a time within
-- the years 0001-9999 in its own offset but outside them in UTC, where Postgres keeps it
-- ('9999-12-31T23:59:59-12:00', '0001-01-01T00:00:00+14:00'), was stored, and the API then listed
-- the row's time as "+010000-01-01T11:59:59.000Z" or "0000-12-31T10:00:00.000Z": the first no
-- RFC 3339 date-time (the OpenAPI document's format), the second a year 0 that many clients cannot
-- parse. Now such a time raises 22023 naming the option, as for a malformed one. Otherwise as in
-- 0001; mailer.check_options keeps its privileges and owner.
create or replace function mailer.check_options(o jsonb, allowed text[]) returns void language plpgsql stable as $$
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
      -- In UTC, as stored and as the API writes it back.
      if (o ->> k)::timestamptz not between '0001-01-01T00:00:00Z'::timestamptz and '9999-12-31T23:59:59.999999Z'::timestamptz then
        perform mailer.invalid(format('options.%s', k), 'must be from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z');
      end if;
    end if;
  end loop;
  if coalesce((o ->> 'expiresAt')::timestamptz <= coalesce((o ->> 'sendAt')::timestamptz, now()), false) then
    perform mailer.invalid('options.expiresAt', 'must be later than sendAt (or now)');
  end if;
end $$;

-- mailer.normalize_message. Why: message.replyTo had no limit, and mailer.normalize_recipients
-- takes time quadratic in the number of addresses (0012): 20,000 reply-to addresses held the
-- caller's transaction for 21 s before the row was stored (through POST /v1/outbox, a 503
-- database_unavailable after its 5 s limit, which a client retries, instead of an answer). Now more
-- than 500 (the limit of to, cc and bcc together) raise 22023 naming message.replyTo, counted
-- before any is checked. Otherwise as in 0014; mailer.normalize_message keeps its privileges and
-- owner.
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
      n := n + 1;
    end loop;
    out := out || jsonb_build_object('attachments', m -> 'attachments');
  end if;
  return out;
end $$;
