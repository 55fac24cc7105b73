-- 0044: an expiresAt already past is refused with a sendAt too, and a repeat of a request whose row exists is answered with it after its expiresAt.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: mailer.check_options compared expiresAt with sendAt when one was given, else with now().
-- - With a sendAt in the past ("2020-01-01T00:00:00Z", as a client whose clock runs behind, or one
--   that copies an event's time, writes it) an expiresAt past too was taken: enqueue_email and
--   POST /v1/outbox answered with a new id (201) for a row that could never be sent, failed
--   `expired` by the next sweep. Now an expiresAt not later than now is refused either way
--   (22023 naming options.expiresAt: a 400), and one not later than sendAt as before.
-- - Without a sendAt, a repeat of a request after its expiresAt had passed was refused (22023,
--   "must be later than sendAt (or now)") before its dedupe key was looked up: a client whose
--   answer was lost, repeating it with its Idempotency-Key, was told 400, as if nothing had been
--   enqueued, though its mail may have gone out before it expired; under a new key it would have
--   been sent again. Now the check against now is made in enqueue_email once the key is known to
--   name no row: a repeat is answered with its row's id (POST /v1/outbox: 200, or 422 for another
--   request under the key), whatever the time; the checks that do not depend on the time stay
--   in check_options, before anything else.
-- Otherwise as in 0015 and 0024; the functions keep their privileges and owner. The trigger's
-- options take neither sendAt nor expiresAt, so check_options' change does not reach it.
--
-- Older binaries call both as before (one more kind of request refused, one more answered).
--! older-binaries-compatible

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
  -- Against now in enqueue_email: a replay of a request whose row exists is answered whatever the
  -- time now.
  if coalesce((o ->> 'expiresAt')::timestamptz <= (o ->> 'sendAt')::timestamptz, false) then
    perform mailer.invalid('options.expiresAt', 'must be later than sendAt');
  end if;
end $$;

create or replace function mailer.enqueue_email(message jsonb, options jsonb default '{}') returns bigint
language plpgsql as $$
declare
  m jsonb := mailer.normalize_message(message);
  o jsonb := coalesce(options, '{}');
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
    -- A repeat of a request whose row exists, from before its expiresAt, is answered with that row;
    -- only a new row is refused. (A row another transaction has inserted and not yet committed is
    -- not seen here: its repeat is refused as a new one.)
    if expired then
      select id into new_id from mailer.email_outbox where tenant = t and dedupe_key = o ->> 'dedupeKey';
      if new_id is not null then return new_id; end if;
      perform mailer.invalid('options.expiresAt', 'must be later than now (a mail past its expiresAt is never sent)');
    end if;
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
