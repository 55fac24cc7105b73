-- 0175: a body of blanks only is no body, refused as "" is (0174); a keyed repeat of a request its row holds is answered with that row before the body is judged.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why, blanks: 0174 refused "" alone but took {"text": "   \n"} or {"html": "\u00a0"}, which went
-- out as an empty mail just as well (a caller's `text: note ?? " "`, a form's whitespace). A text
-- or html made only of the characters blank-body.ts names is now refused as "" is, same SQLSTATE
-- (22023) and words ("mailer: message.text must not be empty ("" is no body): …", message.html when
-- the text is null or absent), unless the message carries a file (the file is the mail) or its
-- other body shows something. Blank is spelt out as a class, not \s or [[:space:]], which follow
-- the database's locale (C: ASCII alone): ASCII's tab, LF, VT, FF, CR and space, the rest of
-- Unicode's White_Space (U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F,
-- U+3000), the zero-width space, joiners, word joiner and byte order mark (U+200B-U+200D, U+2060,
-- U+FEFF): the class the worker judges a stored row by (blank-body.ts's BLANK_CLASS, alike char
-- for char: enqueue-sql.test.ts). Markup is a body: "<p> </p>" is taken as before.
--
-- Why, replays: 0174 judged the body before the dedupe key was looked up, so a keyed repeat
-- (options.dedupeKey, the API's Idempotency-Key) of a request taken before 0174 with an empty
-- body was refused (400) where the first request got its row's id: a client retrying a lost answer
-- was told nothing was enqueued of a row that exists (and fails at send, unsent). Now judged as
-- 0086's refusals and a past expiresAt are under a key (0087): the insert finds out whether the key
-- names a row; only a new row is refused. Without a key, refused where 0174 refused it. Under a
-- key, an unknown option or a correlationId with a control character is still named first (judged
-- before the lookup, as in 0174), then 0086's refusals, the body's and a past expiresAt, in the
-- order normalize_message and enqueue_email raise them without a key.
--
-- enqueue_email otherwise as in 0174 (same signature, privileges, owner, pinned settings); create
-- or replace keeps its grants and comment.
--
-- Older binaries enqueue through this function: they answer a blank body with this 22023 (a 400
-- naming the field, as for any refusal), where they stored it, and a keyed repeat as this one does.
-- Their transports sent the blank mail; this binary fails such a row stored before at send
-- (invalid_message, unsent), one with a file or another body excepted.
--! older-binaries-compatible

create or replace function mailer.enqueue_email(message jsonb, options jsonb default '{}') returns bigint
language plpgsql set search_path = pg_catalog, pg_temp set standard_conforming_strings = on as $$
declare
  o jsonb := coalesce(options, '{}');
  -- Under a dedupeKey, 0086's refusals wait until the key is known to name no row (0087).
  m jsonb := mailer.normalize_message(message, o ->> 'dedupeKey' is null);
  -- "" is no body (0074), nor are blanks only (0175): a message whose bodies are all so (or one
  -- beside none) and that carries no file would go out empty; with a file, the file is the mail.
  -- Named at the text when it is given, else at the html. Not normalize_message's, which also
  -- compares a stored row with a replayed request (enqueue-replay.ts).
  empty text[] := case when coalesce(m ->> 'text', '') ~ '^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*$'
                        and coalesce(m ->> 'html', '') ~ '^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*$'
                        and coalesce(jsonb_array_length(m -> 'attachments'), 0) = 0
                       then array[case when m ->> 'text' is not null then 'message.text' else 'message.html' end,
                                  'must not be empty ("" is no body): a message needs message.text or message.html'] end;
  -- Under a dedupeKey, the refusals wait until the key is known to name no row (0087, 0175):
  -- 0086's first, as normalize_message raises them first without a key, then the body's.
  refused text[] := case when o ->> 'dedupeKey' is not null
                         then coalesce(case when m ? 'headers' or pg_column_size(m) > 262144
                                            then mailer.header_refusal(m) end, empty) end;
  t text;
  new_id bigint;
  -- Not later than now (database time): a row stored so would never be sent.
  expired boolean;
begin
  if o ->> 'dedupeKey' is null and empty is not null then perform mailer.invalid(empty[1], empty[2]); end if;
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
