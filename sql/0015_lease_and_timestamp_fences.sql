-- 0015: the last check before a send refuses a lease that has ended.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: mailer.start_sends (0007) was fenced by (id, lease_token, status = 'sending') only, so a
-- lease whose expiry had passed but that no reclaim had taken yet still passed it: the send was
-- recorded as started and went out, while any worker's reclaim could take the row mid-send (as
-- ambiguous) and send it again. Now a lease must still be live in database time
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
