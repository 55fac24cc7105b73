-- 0007: a claim that is not the record of its sends commits without waiting for its WAL flush;
-- the last check before sends becomes a function, so that it can be a prepared statement.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: a commit that waits for its WAL to reach the disk added 0.4-0.8 ms to every claim's round
-- trip on the benchmark's VM, and a pickup waits for its claim. With shared send limits (Graph) the
-- claim does not record its sends as started: the last check before each send (outbox-mailer's
-- startSends) does, and it commits synchronously. WAL is flushed in order, so that commit flushes
-- the claim's WAL too. A claim lost in a crash of Postgres therefore had no send started: its rows
-- are pending again with their attempts unchanged, and nothing was sent. A claim that records its
-- sends as started itself (mailer.claim_batch with mark_started: file, discard) is that record,
-- and still waits for its flush.
--
-- mailer.claim_batch (0006) is unchanged.

-- mailer.claim_batch without mark_started, whose caller's transaction then commits without waiting
-- for its WAL flush. Same result as mailer.claim_batch.
create function mailer.claim_unflushed(n integer, worker text, token uuid, lease_seconds float8,
                                       default_max_attempts integer)
returns json
language plpgsql volatile
as $$
begin
  -- Local to the caller's transaction: a function without SET clauses leaves it in place on return.
  perform set_config('synchronous_commit', 'off', true);
  return mailer.claim_batch(n, worker, token, lease_seconds, false, default_max_attempts);
end $$;

-- The last check before sends (outbox-mailer's startSends), as a function whose one cached plan
-- is pinned, so the statement can be prepared once per connection: planned anew at every call it
-- cost the Graph path's pickup about 0.5 ms; prepared as plain SQL, its generic plan (made while
-- the table was small) scanned the whole table. Marks the given leases as sending-now unless
-- cancelled or expired. Fenced by (id, lease_token, status = 'sending'); a lease missing from the
-- result was lost. Primary-key probes (= any) hashed against the input, as in mailer.mark_sent.
-- Row locks order it against a cancel: exactly one of them sees the other's write.
create function mailer.start_sends(ids bigint[], tokens uuid[])
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
    returning o.id, o.send_started_at is not null as started,
              o.cancel_requested_at is not null as cancelled,
              (o.expires_at is not null and o.expires_at <= now()) as expired
  )
  select c.id, c.started, c.cancelled, c.expired from checked c;
end $$;
