-- 0007: a claim that is not the record of its sends commits without waiting for its WAL flush.
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
