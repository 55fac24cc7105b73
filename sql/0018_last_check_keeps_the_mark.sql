-- 0018: the last check before a send keeps an interrupted earlier send's mark on a row it refuses.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- mailer.start_sends. Why: a row it found expired (or cancelled) had send_started_at set to null,
-- which also erased the mark an interrupted earlier send had left (the evidence that the message
-- may have gone out). The worker's settlement still knew it from its lease, but a worker that
-- stopped between the check and the settlement left the row to a reclaim and a later claim that
-- saw no mark: the row then failed as expired with "not sent before expiresAt", where it may have
-- been delivered. Now a refused row keeps send_started_at as it was: null for a clean row, the
-- earlier send's mark otherwise (a row whose send had started is never cancel-requested, so a
-- cancelled one has none). Rows with an expiry are not recorded as started by a claim (0017), so
-- a mark found here is never this lease's own. The settlement clears or keeps it as before.
-- Same signature, result, plan and privileges.
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
             else o.send_started_at
           end
      from unnest(ids, tokens) as i(id, token)
     where o.id = any(ids) and o.id = i.id and o.lease_token = i.token and o.status = 'sending'
       and o.lease_expires_at > now()
    returning o.id, o.cancel_requested_at is null and (o.expires_at is null or o.expires_at > now()) as started,
              o.cancel_requested_at is not null as cancelled,
              (o.expires_at is not null and o.expires_at <= now()) as expired
  )
  select c.id, c.started, c.cancelled, c.expired from checked c;
end $$;
