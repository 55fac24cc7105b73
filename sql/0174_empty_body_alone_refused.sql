-- 0174: enqueue refuses a message whose only body is "" (an empty text or html alone) and that carries no file: "" is no body.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: README calls "" no body (0074: beside a text, an empty html is not sent) and requires text
-- or html, yet {"text": ""} alone, {"html": ""} alone, or both "", were taken: normalize_message
-- asks for a value that is not null, and "" is one. The mail went out empty to its recipient: a
-- customer received a subject and nothing else, from a caller's bug (`text: body ?? ""`) nothing
-- told it of. Now refused at enqueue, SQLSTATE 22023, as "mailer: message.text must not be empty
-- ("" is no body): a message needs message.text or message.html" (message.html when the text is
-- null or absent); POST /v1/outbox answers 400 with the same words. An empty body beside one that
-- is not empty is taken as before (the other is the mail); blanks are a body: only "" is refused.
-- A message carrying a file is not empty (an invoice or a scan sent with `text: ""`, a form's empty
-- note: the file is the mail) and is taken as before; an empty list of attachments is no file.
--
-- The check is enqueue_email's, after normalize_message (whose other refusals come first), not
-- normalize_message's: POST /v1/outbox compares a row with a request under its Idempotency-Key
-- through normalize_message (enqueue-replay.ts, older binaries too), and a row stored before 0174
-- with an empty body must be compared there (another request: 422), not refused (a 500).
-- enqueue_email otherwise as in 0087 (same signature, privileges, owner, pinned settings).
--
-- Older binaries enqueue through this function: they answer such a message with this 22023 (a
-- 400 naming the field, as for any refusal), where they stored it. Their transports sent the
-- empty mail; this binary fails such a row stored before at send (invalid_message, unsent), one
-- with a file excepted.
--! older-binaries-compatible

create or replace function mailer.enqueue_email(message jsonb, options jsonb default '{}') returns bigint
language plpgsql set search_path = pg_catalog, pg_temp set standard_conforming_strings = on as $$
declare
  o jsonb := coalesce(options, '{}');
  -- Under a dedupeKey, 0086's refusals wait until the key is known to name no row (0087).
  m jsonb := mailer.normalize_message(message, o ->> 'dedupeKey' is null);
  refused text[] := case when o ->> 'dedupeKey' is not null and (m ? 'headers' or pg_column_size(m) > 262144)
                         then mailer.header_refusal(m) end;
  t text;
  new_id bigint;
  -- Not later than now (database time): a row stored so would never be sent.
  expired boolean;
begin
  -- "" is no body (0074): a message whose bodies are all "" (or one "" beside none) and that
  -- carries no file would go out empty; with a file, the file is the mail. Named at the empty one,
  -- the text when both are. Here, not in normalize_message, which also compares a stored row with
  -- a replayed request (enqueue-replay.ts): a row stored before 0174 is compared, not refused.
  if coalesce(m ->> 'text', '') = '' and coalesce(m ->> 'html', '') = ''
     and coalesce(jsonb_array_length(m -> 'attachments'), 0) = 0 then
    perform mailer.invalid(case when m ->> 'text' = '' then 'message.text' else 'message.html' end,
                           'must not be empty ("" is no body): a message needs message.text or message.html');
  end if;
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
