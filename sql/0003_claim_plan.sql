-- 0003: claims keep an ordered index scan whatever the statistics say.
-- Forward-only. Never edit this file after release: add a new numbered file instead.

-- The due rows a claim takes, in claim order, locked with SKIP LOCKED; ambiguous = the previous
-- attempt began a send (read from the locked row version).
-- The planner settings pin the plan to an ordered scan of email_outbox_claim_idx that stops after n
-- rows. Statistics lag a burst of inserts (they may still say "no pending rows"), and the plan chosen
-- then, a bitmap scan and sort of every pending row, made each claim cost O(backlog).
create function mailer.claim_candidates(n integer)
returns table (id bigint, ambiguous boolean)
language sql volatile rows 500
set enable_bitmapscan = off
set enable_seqscan = off
set enable_sort = off
as $$
  select o.id, o.send_started_at is not null
    from mailer.email_outbox o
   where o.status = 'pending' and o.send_at <= now()
   order by o.priority, o.send_at, o.id
   limit n
   for update skip locked
$$;
