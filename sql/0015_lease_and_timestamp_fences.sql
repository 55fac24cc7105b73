-- 0015: the last check before a send refuses a lease that has ended; enqueue options refuse times
-- outside the years 0001-9999 (UTC).
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- mailer.start_sends. Why: the last check before a send (0007) was fenced by (id, lease_token,
-- status = 'sending') only, so a lease whose expiry had passed but that no reclaim had taken yet
-- still passed it: the send was recorded as started and went out, while any worker's reclaim could
-- take the row mid-send (as ambiguous) and send it again. Now a lease must still be live in database time
-- (lease_expires_at > now(); a reclaim takes lease_expires_at < now()), so a started send always
-- has a live lease: nothing is reclaimed under it before its heartbeat extends it.
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
