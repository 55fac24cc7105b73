-- 0177: normalize_message counts the body the transport sends when the html is blank beside a text; a template whose bodies are blank without a placeholder (or through their tags alone) is refused; an address string's blanks and base64's whitespace are spelt out.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why, the count: the transports send a blank body (blank-body.ts's class, as 0175) beside one
-- that shows something as no body (src/outbox/stored-message.ts shownBodies): a blank html beside
-- a text is the text's request, not the html's. mailer.normalize_message (its two-argument form,
-- 0087, which normalize_message(m) and enqueue_email call) counted the html unless it was "" (0074),
-- so a text near 4 MB beside html " " was taken here and failed at send with message_too_large.
-- It now counts the text then too; otherwise as in 0087 (same signature, privileges, owner and
-- pinned settings: create or replace keeps them). The class is read only past the bound under
-- which nothing is counted (a message's jsonb past ~700 kB), and stops at the html's first
-- character that shows something.
--
-- Why, templates: a row whose template's bodies render blank fails at send (template_error, f2ab7e7),
-- and a template whose text_body and html_body (those it has) hold no placeholder and are empty or
-- blanks only renders so for every row: each row its trigger enqueues failed, one by one, while
-- the table took the template. mailer.check_template (0031's, restated with 0050's pinned
-- settings) now refuses it where it is written, 22023 naming text_body when the template has one,
-- else html_body, as 0031 refuses what fails every mail: "text_body is empty or blanks only and has
-- no placeholder: every mail of the template would fail (a mail without a body is not sent)" (",
-- as is html_body, and neither has a placeholder" when both are so). A body with a placeholder is
-- the row's to fill; markup ("<p> </p>") is a body. Templates stored before are kept as they are;
-- the deploy guide's step 6 check (0031's) lists them too.
--
-- A body of tags alone renders blank for every row too: a comment ("{{! write the body }}"),
-- sections holding nothing ("{{#items}}{{/items}}", "{{^a}} {{/a}}") or a partial (none is ever
-- given: it renders nothing). mailer.template_body_renders_blank reads a body as mustache.js does
-- (the tokens of mailer.mustache_problem, 0031: a tag's type after the blanks mustache skips, "{{{"
-- closed by "}}}"): it is blank for every row when it has no variable tag ({{name}}, {{{name}}},
-- {{&name}}: a column may fill it) and its text outside tags (inside a section or not: a row may
-- open the section) is 0175's blanks alone, spelt out. A delimiter change ({{=…=}}) is not
-- followed: such a body may render, and is taken. A body mustache cannot parse is refused by
-- mustache_problem first. A body without a tag is named in the words above; one with tags with
-- what it lacks ("has no placeholder and no text but blanks outside its tags …").
--
-- Why, addresses: mailer.normalize_recipients (0168) read the blanks around "Name <address>" (before
-- a quoted name, before the <, after the >), between a list's entries in one string and between a
-- display name's words with \s, which is the database locale's: ASCII whitespace in C, U+3000,
-- U+00A0, U+0085 and more (ICU's even U+001C-U+001F) in an ICU or glibc UTF-8 database. So one
-- string was taken in one database and refused in another, and the API, which reads the sender as
-- SQL stores it to check it against MAIL_FROM_ALLOWED and a token's senders claim
-- (src/api/enqueued-sender.ts, src/outbox/email-address.ts: ASCII blanks), did not read
-- "Boss <ceo@example.com>" followed by U+3000 that an ICU database stored as ceo@example.com: the
-- claim, which no worker asks again, was passed. These blanks are now 0175's class in both, spelt
-- out, in every database: what a UTF-8 database took is taken everywhere and stored as it was
-- (a keyed repeat of it compares equal), what a C one refused for such a blank alone is taken;
-- U+001C-U+001F (control characters, refused in an address) after the > are refused. Each
-- address as before (is_email_address, 0043; btrim's spaces). normalize_recipients otherwise as
-- in 0168 (same signature, privileges, owner, pinned settings).
--
-- Why, base64: normalize_message took whitespace in an attachment's contentBase64 by \s too (0024,
-- 0032): in an ICU or glibc UTF-8 database a no-break or ideographic space there was taken, kept
-- in the stored row, and the worker, which reads ASCII whitespace (stored-message.ts, as the API
-- does), failed the row at send (invalid_message). Now ASCII's tab, LF, VT, FF, CR and space,
-- spelt out, in every database; a C database takes and refuses as before.
--
-- Older binaries enqueue through these functions. They send the blank html, whose request is
-- smaller than the one counted: what they enqueue is refused in one case more, never stored in a
-- shape they cannot send. They write no template (`bun run dev`'s demo one passes). Their API's
-- sender check reads ASCII blanks alone, as before: until they are gone, a blank other than
-- those after a sender's > passes it in every database, as it did in a UTF-8 one.
--! older-binaries-compatible

-- 0087's normalize_message, the body a blank html beside a text leaves counted as the text, and
-- base64's whitespace spelt out.
create or replace function mailer.normalize_message(m jsonb, refuse_header boolean) returns jsonb language plpgsql immutable
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
          -- Whitespace is ASCII's, spelt out (0177): a class shorthand is the database locale's,
          -- and an ICU one's took a no-break space the worker then failed the row for.
          if content !~ '^[A-Za-z0-9+/\t\n\v\f\r ]*={0,2}[\t\n\v\f\r ]*$' then
            perform mailer.invalid(format('message.attachments[%s]', n),
              'must be {"filename", "contentBase64", "contentType"?, "contentId"?} with base64 content');
          end if;
          content := regexp_replace(stripped, '[\t\n\v\f\r ]+', '', 'g');
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
    -- the html unless it is empty, or blank beside a text that shows something (0175's class,
    -- shownBodies), then the text (an older binary sent that html: smaller).
    request := octet_length('{"message":{"subject":,"body":{"contentType":"Text","content":}')
      + octet_length((out -> 'subject')::text)
      + octet_length(coalesce(case when out ->> 'html' <> ''
                                    and not (out ->> 'html' ~ '^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*$'
                                             and coalesce(out ->> 'text', '') !~ '^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*$')
                                   then out -> 'html' end, out -> 'text', '""')::text)
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

-- Whether a template body renders nothing but blanks for every row (see the header); null for null.
create function mailer.template_body_renders_blank(tpl text) returns boolean language plpgsql immutable parallel safe
  set search_path = pg_catalog, pg_temp set standard_conforming_strings = on as $$
declare
  pieces text[] := string_to_array(tpl, '{{');
  n int := cardinality(pieces);
  i int := 2;
  at int;
  kind text;
  blank constant text := '^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*$';
begin
  if tpl is null then return null; end if;
  if pieces[1] !~ blank then return false; end if;
  while i <= n loop
    -- As mustache_problem: blank up to a {{ of its own is a {{{ tag.
    if i < n and pieces[i] ~ '^[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$' then
      kind := '{';
    else
      kind := substring(pieces[i] from '^[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*([#^/>{&=!]?)');
    end if;
    -- A variable a column fills, or delimiters this read does not follow: it may render.
    if kind not in ('#', '^', '/', '>', '!') then
      return false;
    end if;
    loop
      at := strpos(pieces[i], '}}');
      exit when at > 0;
      i := i + 1;
      if i > n then return false; end if;
    end loop;
    -- The text after the tag, up to the next {{.
    if substr(pieces[i], at + 2) !~ blank then return false; end if;
    i := i + 1;
  end loop;
  return true;
end $$;

-- 0031's check, with the bodies that render blank for every row refused (0177).
create or replace function mailer.check_template() returns trigger language plpgsql
  set search_path = pg_catalog, pg_temp set standard_conforming_strings = on as $$
declare
  field text;
  value text;
  problem text;
  recipients int := cardinality(new.to_addresses) + cardinality(new.cc_addresses) + cardinality(new.bcc_addresses);
  any_recipient boolean := false;
begin
  if recipients > 500 then
    perform mailer.invalid('to_addresses',
      format('has %s entries with cc_addresses and bcc_addresses; a message takes at most 500 recipients', recipients));
  end if;
  -- Each field as render.ts names it, in its order of fields.
  for field, value in
    select f, v from (
      select 1, 0, 'subject', new.subject union all
      select 2, 0, 'text_body', new.text_body union all
      select 3, 0, 'html_body', new.html_body union all
      select 4, i, format('to_addresses[%s]', i - 1), new.to_addresses[i] from generate_subscripts(new.to_addresses, 1) i union all
      select 5, i, format('cc_addresses[%s]', i - 1), new.cc_addresses[i] from generate_subscripts(new.cc_addresses, 1) i union all
      select 6, i, format('bcc_addresses[%s]', i - 1), new.bcc_addresses[i] from generate_subscripts(new.bcc_addresses, 1) i union all
      select 7, 0, 'reply_to', new.reply_to union all
      select 8, 0, 'from_address', new.from_address) x(o, i, f, v)
    where v is not null
    order by o, i
  loop
    problem := mailer.mustache_problem(value);
    if problem is not null then
      perform mailer.invalid(field, problem);
    end if;
    if field not in ('subject', 'text_body', 'html_body') and strpos(value, '{{') = 0
       and not mailer.template_address_renders(value) then
      perform mailer.invalid(field,
        'is not an e-mail address ("Name <address>" or an address) and has no placeholder: every mail of the template would fail');
    end if;
  end loop;
  -- renderedSubject: trimmed, then each run of control characters folded to a space dropped at
  -- either end; nothing left fails every mail.
  if strpos(new.subject, '{{') = 0 and mailer.js_trim(new.subject) ~ '^[\x01-\x1f\x7f]*$' then
    perform mailer.invalid('subject', 'is empty once trimmed and its control characters folded');
  end if;
  -- Each entry left renders one recipient or fails (refused above) unless empty; a NULL one renders
  -- nothing, as an empty one. None at all is the table's own check (templates_recipient_check).
  select bool_or(strpos(a, '{{') > 0
                 or a !~ '^(?:[^<>]*<[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*>)?[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$')
    into any_recipient
    from unnest(new.to_addresses || new.cc_addresses || new.bcc_addresses) a;
  if recipients > 0 and not coalesce(any_recipient, false) then
    perform mailer.invalid('to_addresses',
      'is required: each entry of to_addresses, cc_addresses and bcc_addresses is empty and has no placeholder');
  end if;
  -- renderedBodies: the bodies the template has (one at least, templates_body_check) each render
  -- blank for every row (empty or blanks only without a tag, or through their tags) and fail it.
  -- Named at text_body when it has one, as render.ts names them; bodies without a tag in the
  -- first words below.
  if (new.text_body is not null or new.html_body is not null)
     and coalesce(mailer.template_body_renders_blank(new.text_body), true)
     and coalesce(mailer.template_body_renders_blank(new.html_body), true) then
    perform mailer.invalid(case when new.text_body is not null then 'text_body' else 'html_body' end,
      case when coalesce(strpos(new.text_body, '{{'), 0) + coalesce(strpos(new.html_body, '{{'), 0) > 0
           then case when new.text_body is not null and new.html_body is not null
                     then 'has no placeholder and no text but blanks outside its tags (comments, partials and sections holding neither), nor has html_body: every mail of the template would render them blank and fail (a mail without a body is not sent)'
                     else 'has no placeholder and no text but blanks outside its tags (comments, partials and sections holding neither): every mail of the template would render it blank and fail (a mail without a body is not sent)' end
           when new.text_body is not null and new.html_body is not null
           then 'is empty or blanks only, as is html_body, and neither has a placeholder: every mail of the template would fail (a mail without a body is not sent)'
           else 'is empty or blanks only and has no placeholder: every mail of the template would fail (a mail without a body is not sent)' end);
  end if;
  return new;
end $$;

-- 0168's normalize_recipients, its blanks spelt out (0177).
create or replace function mailer.normalize_recipients(v jsonb, field text) returns jsonb language plpgsql immutable
  set search_path = pg_catalog, pg_temp set standard_conforming_strings = on as $$
declare
  item jsonb;
  i int := 0;
  out jsonb := '[]';
  addr text;
  named text[];
  -- from is one address, and a lone value of any other field was sent as one: such an entry is
  -- the field itself. A list's entries are named by their index.
  one boolean := field = 'message.from' or jsonb_typeof(v) <> 'array';
  entry text;
  pieces text[];
  why text;
  tail text[];
  held int;
  told boolean;
  advice text;
begin
  if v is null or v = 'null'::jsonb then return '[]'; end if;
  if jsonb_typeof(v) <> 'array' then v := jsonb_build_array(v); end if;
  for item in select value from jsonb_array_elements(v) loop
    entry := case when one then field else format('%s[%s]', field, i) end;
    if jsonb_typeof(item) = 'string' then
      addr := btrim(item #>> '{}');
      if mailer.is_email_address(addr) then
        out := out || jsonb_build_array(jsonb_build_object('address', addr));
      else
        -- "Name <address>": a quoted name, or one without " < > @ , ; (no list read as one entry).
        -- Blanks around it, between a list's entries and a name's words are 0175's class, spelt
        -- out as email-address.ts spells them: a class shorthand would be the locale's (0177).
        named := regexp_match(item #>> '{}', '^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*(?:"([^"]*)"|([^"<>@,;]*))[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*<([^<>]*)>[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*$');
        if named is null or not mailer.is_email_address(btrim(named[3])) then
          why := mailer.address_refusal(coalesce(btrim(named[3]), addr));
          told := false;
          advice := case when field = 'message.from'
                         then 'from is one address, the sender (to, cc and bcc take a JSON list)'
                         else 'give each its own entry in a JSON list, as ["ann@example.com", "Bob <bob@example.com>"]' end;
          -- A list joined into one string: two pieces or more, each an address, alone or "Name
          -- <address>" (a separator closing the list, as a mail client copies it, is no piece).
          if named is null and addr ~ '[,;]' then
            pieces := regexp_split_to_array(regexp_replace(addr, '^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff,;]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff,;]+$', '', 'g'), '[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*[,;][\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*');
            if cardinality(pieces) > 1 and not exists (select 1 from unnest(pieces) p
                            where not mailer.is_email_address(p)
                              and (regexp_match(p, '^(?:"[^"]*"|[^"<>@,;]*)[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*<([^<>]*)>$') is null
                                   or not mailer.is_email_address(btrim((regexp_match(p, '<([^<>]*)>$'))[1])))) then
              why := format('is not a valid e-mail address: it holds %s addresses separated by , or ;: %s',
                cardinality(pieces), advice);
              told := true;
            end if;
          end if;
          -- Else "Name <address>" whose name, outside double quotes, holds addresses: the words of
          -- it (between blanks, < > , ; ") that are one.
          if named is null and not told then
            tail := regexp_match(item #>> '{}', '^(.*)<([^<>]*)>[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*$');
            if tail is not null and mailer.is_email_address(btrim(tail[2]))
               and btrim(tail[1]) !~ '^"[^"]*"$' then
              select count(*) into held from regexp_matches(tail[1], '[^\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff<>,;"]+', 'g') w
               where mailer.is_email_address(w[1]);
              if held > 0 then
                why := format('is not a valid e-mail address: it holds %s addresses, %s in its display name: %s; a display name meant to show an address goes in double quotes',
                  held + 1, held, advice);
              end if;
            end if;
          end if;
          perform mailer.invalid(entry, why);
        end if;
        out := out || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
          'address', btrim(named[3]),
          'name', nullif(btrim(mailer.fold_control_characters(coalesce(named[1], named[2]))), ''))));
      end if;
    elsif jsonb_typeof(item) = 'object' then
      if exists (select 1 from jsonb_object_keys(item) k where k not in ('address', 'name')) then
        perform mailer.invalid(entry, 'may only have the keys address and name');
      end if;
      addr := btrim(item ->> 'address');
      if jsonb_typeof(item -> 'address') is distinct from 'string' or not mailer.is_email_address(addr) then
        perform mailer.invalid(format('%s.address', entry), mailer.address_refusal(addr));
      end if;
      if item ? 'name' and jsonb_typeof(item -> 'name') not in ('string', 'null') then
        perform mailer.invalid(format('%s.name', entry), 'must be a string');
      end if;
      out := out || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object('address', addr, 'name', mailer.fold_control_characters(item ->> 'name'))));
    else
      perform mailer.invalid(entry, 'must be an address string or {"address","name"}');
    end if;
    i := i + 1;
  end loop;
  return out;
end $$;
