-- 0011: mailer.enqueue_email inserts a mail without a dedupe key without ON CONFLICT.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: ON CONFLICT makes an insert speculative (the arbiter index is checked first, then the
-- insertion is confirmed by a record of its own): about 48 bytes more WAL per enqueue (411 against
-- 363 B; BENCHMARKS.md, round 18), written in the application's own transaction, for a row that
-- cannot conflict (the dedupe index holds only rows with a key). A mail with a key is inserted as
-- before. Same validation, same ids, same errors; the function's privileges and comment are kept.
--! older-binaries-compatible
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
  insert into mailer.email_outbox (tenant, dedupe_key, priority, send_at, expires_at, max_attempts, correlation_id, message)
  values (t, o ->> 'dedupeKey', coalesce((o ->> 'priority')::smallint, 0),
          coalesce((o ->> 'sendAt')::timestamptz, now()), (o ->> 'expiresAt')::timestamptz,
          (o ->> 'maxAttempts')::integer, o ->> 'correlationId', m)
  on conflict (tenant, dedupe_key) where dedupe_key is not null do nothing
  returning id into new_id;
  if new_id is null then
    -- The conflicting row is committed (on conflict waited for it), so this finds it.
    select id into new_id from mailer.email_outbox where tenant = t and dedupe_key = o ->> 'dedupeKey';
  end if;
  return new_id;
end $$;
