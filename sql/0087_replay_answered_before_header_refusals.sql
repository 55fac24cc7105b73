-- 0087: a repeat under its dedupeKey of a request taken before 0086 is answered with its row, not refused.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: 0086 refuses at enqueue two X- headers named alike but for case and a message whose header
-- passes 256 KB, both taken before. A client repeating such a request with its dedupeKey (POST
-- /v1/outbox: its Idempotency-Key), its first answer lost, was told 400 (22023), as if nothing had
-- been enqueued: it may change the message and send it again, a duplicate of the mail its row
-- still sends. As for a request past its expiresAt (0044, 0046), those two refusals now wait
-- until the key is known to name no row: a repeat is answered with the row, committed or still
-- being inserted; a new request is refused as in 0086, and only it pays the subtransaction that
-- finds out. A request without a dedupeKey is refused as before. POST /v1/outbox compares the
-- row with the request by normalize_message(m, false) (enqueue-replay.ts): the same request is a
-- 200 with its id, another one a 422, as for any other key.
--
-- mailer.header_refusal: 0086's two checks on a normalized message, as {field, problem}, or null.
-- mailer.normalize_message(m, refuse_header): 0086's normalize_message, the two checks made only
-- when refuse_header, after the headers' and attachments' other checks (what is taken and refused
-- is 0086's; a message with another problem too is named by that one).
-- normalize_message(m) is normalize_message(m, true); enqueue_email as in 0046 with the deferred
-- refusal; both keep their privileges and owner and their pinned settings (0050). The new
-- functions are executed by PUBLIC as 0086's are; the PL/pgSQL one is pinned as 0050 pins them.
--
-- Older binaries call normalize_message(m) and enqueue_email as before. One difference: an older
-- POST /v1/outbox repeating such a request under its Idempotency-Key compares the row with
-- normalize_message(m), which refuses it: a 500 where it answered 400, until that binary is gone.
--! older-binaries-compatible

-- 0086's two refusals of a normalized message (normalize_message's output), in its order and
-- words: two X- headers named alike but for case (header names are case-insensitive, RFC 5322;
-- a transport could send one of them), named by the first in jsonb's key order; then a header
-- past Exchange Online's 256 KB as its fields' lines at their least (mailer.header_lines_bytes),
-- counted only when the message's jsonb could hold that much (nearly every message pays one
-- pg_column_size).
create function mailer.header_refusal(m jsonb) returns text[] language sql immutable parallel safe as $$
  select coalesce(
    (select array[format('message.headers.%s', k),
                  format('is the same header as %s (header names are case-insensitive): give one of them', o)]
       from jsonb_object_keys(m -> 'headers') with ordinality h(k, i),
            lateral (select o from jsonb_object_keys(m -> 'headers') o
                      where lower(o) = lower(k) and o collate "C" > k collate "C" limit 1) other
      order by i limit 1),
    (select array['message',
                  format('has a header of at least %s bytes (its subject, from, to, cc, replyTo and X- headers as lines): Exchange Online takes a message header of at most 262144 bytes (256 KB)', b)]
       from (select mailer.header_lines_bytes(m) as b where pg_column_size(m) > 262144) x
      where b > 262144))
$$;

-- 0086's normalize_message; its two refusals (mailer.header_refusal) only when refuse_header.
create function mailer.normalize_message(m jsonb, refuse_header boolean) returns jsonb language plpgsql immutable
  set search_path = pg_catalog, pg_temp set standard_conforming_strings = on as $$
declare
  k text;
  out jsonb;
  n int;
  folded_subject text;
  att jsonb;
  content text;
  stripped text;
  chars bigint;
  attachment_bytes bigint := 0;
  attachments_json bigint := 0;
  request bigint;
  header_bytes bigint;
  refusal text[];
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
    -- Exchange Online's limit on a message's header (256 KB), by the lines these alone would take.
    -- Counted only past the bound their jsonb gives (each key and value held as its bytes and 4 more,
    -- at least what ": " and CRLF add): nearly every message pays one pg_column_size.
    if pg_column_size(m -> 'headers') > 262144 then
      select coalesce(sum(octet_length(h.key) + octet_length(h.value #>> '{}') + 4), 0) into header_bytes
        from (select distinct on (lower(e.key)) e.key, e.value
                from jsonb_each(m -> 'headers') with ordinality e(key, value, i)
               order by lower(e.key), e.i) h;
      if header_bytes > 262144 then
        perform mailer.invalid('message.headers',
          format('must total at most 262144 bytes as "Name: value" lines (256 KB: Exchange Online takes no larger message header); these total %s', header_bytes));
      end if;
    end if;
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
         or coalesce(jsonb_typeof(att -> 'contentType'), 'null') not in ('string', 'null')
         or coalesce(jsonb_typeof(att -> 'contentId'), 'null') not in ('string', 'null') then
        perform mailer.invalid(format('message.attachments[%s]', n),
          'must be {"filename", "contentBase64", "contentType"?, "contentId"?} with base64 content');
      end if;
      -- Base64 without whitespace (the usual) in one pass. Base64 in lines: its line breaks taken
      -- out by replace (regexp_replace took 0.1-0.25 s for 4 MB), what is left in one pass too;
      -- such a content matches the pattern of 0024 (whitespace anywhere before the padding) unless
      -- a line break splits its "==" ("QQ=\n="). Anything else: the pattern of 0024, and the
      -- whitespace taken out to count the groups of four.
      content := att ->> 'contentBase64';
      if content !~ '^[A-Za-z0-9+/]*={0,2}$' then
        stripped := replace(replace(content, E'\r', ''), E'\n', '');
        if stripped ~ '^[A-Za-z0-9+/]*={0,2}$'
           and (stripped not like '%==' or content like '%==%') then
          content := stripped;
        else
          if content !~ '^[A-Za-z0-9+/\s]*={0,2}\s*$' then
            perform mailer.invalid(format('message.attachments[%s]', n),
              'must be {"filename", "contentBase64", "contentType"?, "contentId"?} with base64 content');
          end if;
          content := regexp_replace(stripped, '\s+', '', 'g');
        end if;
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
      -- Whole groups of four (octet_length: ASCII once the pattern passed and whitespace is gone);
      -- the decoded size as attachmentBytes counts it.
      chars := octet_length(content);
      if chars % 4 <> 0 then
        perform mailer.invalid(format('message.attachments[%s].contentBase64', n),
          format('must be whole groups of four base64 characters (pad the last with =); this holds %s', chars));
      end if;
      -- The pattern holds = to the padding at the end. By like, which matches bytes: strpos counted
      -- the characters up to an = it found, and looked for "==" at a third of the speed (each took
      -- about as long as the pattern on 4 MB); right() counts every character.
      attachment_bytes := attachment_bytes + chars / 4 * 3
        - case when content not like '%=' then 0 when content like '%==' then 2 else 1 end;
      -- This attachment's entry in the request (buildSendMailBody), its content without whitespace.
      attachments_json := attachments_json + (case when n > 0 then 1 else 0 end)
        + octet_length('{"@odata.type":"#microsoft.graph.fileAttachment","name":,"contentType":,"contentBytes":""}')
        + octet_length((att -> 'filename')::text) + chars
        -- Sent as application/octet-stream when multipart/* or message/* (sentContentType), and as
        -- given by an older binary: the longer of the two.
        + greatest(octet_length(to_jsonb(coalesce(att ->> 'contentType', 'application/octet-stream'))::text),
                   case when att ->> 'contentType' ~* '^(multipart|message)/'
                        then octet_length('"application/octet-stream"') else 0 end)
        + case when coalesce(att ->> 'contentId', '') <> ''
               then octet_length(',"contentId":,"isInline":true') + octet_length((att -> 'contentId')::text)
               else octet_length(',"isInline":false') end;
      n := n + 1;
    end loop;
    -- The transport's MAX_INLINE_ATTACHMENT_BYTES (attachment_too_large), checked first as there.
    if attachment_bytes > 3145728 then
      perform mailer.invalid('message.attachments',
        format('must total at most 3145728 bytes (3 MB, decoded): Graph sendMail takes no more in one message; these total %s', attachment_bytes));
    end if;
    if n > 0 then
      attachments_json := attachments_json + octet_length(',"attachments":[]');
    end if;
    out := out || jsonb_build_object('attachments', m -> 'attachments');
  end if;
  -- 0086's refusals, here so that a message with another problem too is named by that one. Only a
  -- message with headers or a large jsonb can be refused: every other pays no call.
  if refuse_header and (out ? 'headers' or pg_column_size(out) > 262144) then
    refusal := mailer.header_refusal(out);
    if refusal is not null then perform mailer.invalid(refusal[1], refusal[2]); end if;
  end if;
  -- Far below the limit (nearly every message): the request is at most six times the message's
  -- jsonb size (a control character escaped as \u00XX is six bytes for one; each recipient,
  -- header or attachment takes more in jsonb than a sixth of its place in the request), plus its
  -- fixed parts (under 4 kB). Only a larger message is counted.
  if pg_column_size(out) * 6 + 4096 > 4194304 then
    -- The sendMail request buildSendMailBody writes for this message (MAX_REQUEST_BYTES), with
    -- saveToSentItems true and the tags the row gets at their largest: never smaller than the one
    -- sent. A text's size is its jsonb text's, escaped as JSON.stringify escapes it. The body is
    -- the html unless it is empty, then the text (an older binary sent the empty html: smaller).
    request := octet_length('{"message":{"subject":,"body":{"contentType":"Text","content":}')
      + octet_length((out -> 'subject')::text)
      + octet_length(coalesce(case when out ->> 'html' <> '' then out -> 'html' end, out -> 'text', '""')::text)
      + mailer.sendmail_recipients_bytes(out -> 'to', 'toRecipients')
      + case when jsonb_array_length(out -> 'cc') > 0 then mailer.sendmail_recipients_bytes(out -> 'cc', 'ccRecipients') else 0 end
      + case when jsonb_array_length(out -> 'bcc') > 0 then mailer.sendmail_recipients_bytes(out -> 'bcc', 'bccRecipients') else 0 end
      + case when jsonb_array_length(out -> 'replyTo') > 0 then mailer.sendmail_recipients_bytes(out -> 'replyTo', 'replyTo') else 0 end
      + coalesce(octet_length(',"importance":') + octet_length((out -> 'importance')::text), 0)
      -- The row's id (bigint: at most 19 digits) in X-Outbox-Id and OutboxId.
      + octet_length(',"internetMessageHeaders":[{"name":"X-Outbox-Id","value":"9223372036854775807"}]')
      -- X-Correlation-Id: at most 200 characters, each at most 4 bytes in JSON (a control
      -- character, which JSON would escape in 6, enqueue refuses and the transport folds to a space).
      + octet_length(',{"name":"X-Correlation-Id","value":""}') + 200 * 4
      + octet_length(',"singleValueExtendedProperties":[{"id":"String {5b1f3c2e-8d47-4a8e-9c61-0e7a1d9b4f25} Name OutboxId","value":"9223372036854775807"}]')
      -- OutboxDatabase: a name of at most 40 of a-z 0-9 _ - (config/database-list.ts).
      + octet_length(',{"id":"String {5b1f3c2e-8d47-4a8e-9c61-0e7a1d9b4f25} Name OutboxDatabase","value":""}') + 40
      -- OutboxDatabaseId: mailer.database_identity's uuid as text.
      + octet_length(',{"id":"String {5b1f3c2e-8d47-4a8e-9c61-0e7a1d9b4f25} Name OutboxDatabaseId","value":"00000000-0000-0000-0000-000000000000"}')
      + attachments_json
      + octet_length('},"saveToSentItems":true}');
    if out ? 'headers' then
      -- The transport sends the first of names equal but for case, in the order jsonb keeps keys.
      -- A blank one (empty, or spaces and tabs only) it no longer sends, and an older binary does:
      -- counted still, so that neither sends more than was counted.
      select request + coalesce(sum(octet_length(',{"name":,"value":}') + octet_length(to_jsonb(h.key)::text)
                                    + octet_length(h.value::text)), 0)
        into request
        from (select distinct on (lower(e.key)) e.key, e.value
                from jsonb_each(out -> 'headers') with ordinality e(key, value, i)
               order by lower(e.key), e.i) h;
    end if;
    if request > 4194304 then
      perform mailer.invalid('message',
        format('is too large for one Graph sendMail request: %s bytes with the largest ids the transport adds, Graph takes at most 4194304 (4 MB; attachments count as base64)', request));
    end if;
  end if;
  return out;
end $$;

-- As in 0086: every refusal made.
create or replace function mailer.normalize_message(m jsonb) returns jsonb language plpgsql immutable
  set search_path = pg_catalog, pg_temp set standard_conforming_strings = on as $$
begin
  return mailer.normalize_message(m, true);
end $$;

create or replace function mailer.enqueue_email(message jsonb, options jsonb default '{}') returns bigint
language plpgsql set search_path = pg_catalog, pg_temp set standard_conforming_strings = on as $$
declare
  o jsonb := coalesce(options, '{}');
  -- Under a dedupeKey, 0086's refusals wait until the key is known to name no row (see above).
  m jsonb := mailer.normalize_message(message, o ->> 'dedupeKey' is null);
  refused text[] := case when o ->> 'dedupeKey' is not null and (m ? 'headers' or pg_column_size(m) > 262144)
                         then mailer.header_refusal(m) end;
  t text;
  new_id bigint;
  -- Not later than now (database time): a row stored so would never be sent.
  expired boolean;
begin
  perform mailer.check_options(o, array['tenant', 'dedupeKey', 'sendAt', 'expiresAt', 'priority', 'maxAttempts', 'correlationId']);
  -- An id users search by (GET /v1/outbox?correlationId=), written into X-Correlation-Id.
  if (o ->> 'correlationId') ~ '[\x01-\x1f\x7f]' then
    perform mailer.invalid('options.correlationId', 'must not contain a control character (such as a line break or a tab)');
  end if;
  t := coalesce(o ->> 'tenant', 'default');
  expired := coalesce((o ->> 'expiresAt')::timestamptz <= now(), false);
  -- check_options refuses a dedupeKey that is not a string, so null means none was given.
  if o ->> 'dedupeKey' is null then
    if expired then
      perform mailer.invalid('options.expiresAt', 'must be later than now (a mail past its expiresAt is never sent)');
    end if;
    insert into mailer.email_outbox (tenant, priority, send_at, expires_at, max_attempts, correlation_id, message)
    values (t, coalesce((o ->> 'priority')::smallint, 0),
            coalesce((o ->> 'sendAt')::timestamptz, now()), (o ->> 'expiresAt')::timestamptz,
            (o ->> 'maxAttempts')::integer, o ->> 'correlationId', m)
    returning id into new_id;
    return new_id;
  end if;
  loop
    if expired or refused is not null then
      -- A repeat of a request whose row exists, committed or still being inserted, is answered
      -- with that row; only a new row is refused. The insert finds out which, waiting for an
      -- uncommitted row of the key; when it inserts, the row is new: rolled back with the block.
      -- Never kept, it is inserted without its expiresAt (email_outbox_expiry_check would refuse
      -- it before the key is compared) and due now. 0086's refusal first, as normalize_message
      -- raises it before the expiry is looked at.
      begin
        insert into mailer.email_outbox (tenant, dedupe_key, message)
        values (t, o ->> 'dedupeKey', m)
        on conflict (tenant, dedupe_key) where dedupe_key is not null do nothing
        returning id into new_id;
        if new_id is not null then
          raise exception using errcode = 'P0046';
        end if;
      exception when sqlstate 'P0046' then
        if refused is not null then perform mailer.invalid(refused[1], refused[2]); end if;
        perform mailer.invalid('options.expiresAt', 'must be later than now (a mail past its expiresAt is never sent)');
      end;
    else
      insert into mailer.email_outbox (tenant, dedupe_key, priority, send_at, expires_at, max_attempts, correlation_id, message)
      values (t, o ->> 'dedupeKey', coalesce((o ->> 'priority')::smallint, 0),
              coalesce((o ->> 'sendAt')::timestamptz, now()), (o ->> 'expiresAt')::timestamptz,
              (o ->> 'maxAttempts')::integer, o ->> 'correlationId', m)
      on conflict (tenant, dedupe_key) where dedupe_key is not null do nothing
      returning id into new_id;
      if new_id is not null then return new_id; end if;
    end if;
    -- The conflict was a committed row (on conflict waited for it), found by email_outbox_dedupe_idx;
    -- missing only if a commit since deleted it (pruned): the key is free, so insert again.
    select id into new_id from mailer.email_outbox where tenant = t and dedupe_key = o ->> 'dedupeKey';
    if new_id is not null then return new_id; end if;
  end loop;
end $$;
