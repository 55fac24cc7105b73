-- 0016: a throttled row whose next turn falls at or after its expiresAt fails with code expired.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- mailer.settle_verdict. Why: a retry that gave its attempt back (a throttle, a paused or paced
-- mailbox, a refused credential) and would come back at or after expires_at was 'throttled_out',
-- which the settlement writes as code throttled, while the contract says a row not sent by its
-- expiresAt fails with code expired. Now the expiry is judged first, for every retry: 'expired'.
-- 'throttled_out' is left for a row whose uncounted waits outlasted THROTTLE_DEADLINE_SECONDS with
-- its next turn still before its expiresAt (or with none). Same signature (the parameter called
-- created_at is the start of the row's run of uncounted waits, as the settlement passes it),
-- result, volatility and privileges; still inlined into the settlement.
-- Binaries before this release write such a row as an expired one: code expired, their plain or
-- "may have delivered it" text, and the mark of an interrupted send cleared (they kept it for a
-- throttled row); nothing is sent that was not before.
--! older-binaries-compatible
create or replace function mailer.settle_verdict(
  kind text, refund boolean, delay_ms float8, created_at timestamptz, expires_at timestamptz,
  attempts_after integer, max_attempts integer, throttle_deadline_seconds float8
) returns text language sql stable as $$
  select case
    when kind <> 'retry' then kind
    when expires_at is not null and now() + make_interval(secs => delay_ms / 1000) >= expires_at then 'expired'
    when refund and created_at + make_interval(secs => throttle_deadline_seconds) <= now() then 'throttled_out'
    when attempts_after >= max_attempts then 'exhausted'
    else 'retry'
  end
$$;
