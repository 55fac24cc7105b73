-- 0046: a repeat past its expiresAt waits for a first request still inserting its key, and is answered with its row.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: 0044 answers a repeat of a request whose row exists with that row, whatever the time, but
-- past its expiresAt it looked the key up with a plain select, which does not see a row another
-- transaction has inserted and not yet committed: a client whose first request was still being
-- stored (its answer slow), repeating it with its Idempotency-Key after expiresAt had passed, was
-- told 400 "must be later than now", as if nothing had been enqueued, and the row committed a
-- moment later and was sent. Now, past its expiresAt, the request tries the insert as any other
-- (ON CONFLICT waits for an uncommitted row of the key, as enqueue's other repeats do) in a
-- subtransaction: a conflict is the row, answered with its id; an insert means no row has the key,
-- and it is rolled back (the row, its notification and its triggers' work) and refused as before.
-- Only a request past its expiresAt pays the subtransaction; every other call is as in 0044.
-- The function keeps its privileges and owner.
--
-- Older binaries call it as before (one more repeat answered instead of refused).
--! older-binaries-compatible

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
    if expired then
      -- A repeat of a request whose row exists, committed or still being inserted, is answered
      -- with that row; only a new row is refused. The insert finds out which, waiting for an
      -- uncommitted row of the key; when it inserts, the row is new: rolled back with the block.
      -- Never kept, it is inserted without its expiresAt (email_outbox_expiry_check would refuse
      -- it before the key is compared) and due now.
      begin
        insert into mailer.email_outbox (tenant, dedupe_key, message)
        values (t, o ->> 'dedupeKey', m)
        on conflict (tenant, dedupe_key) where dedupe_key is not null do nothing
        returning id into new_id;
        if new_id is not null then
          raise exception using errcode = 'P0046';
        end if;
      exception when sqlstate 'P0046' then
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
