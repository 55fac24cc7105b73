-- 0133: while MAIL_FROM's probe is owed, its owner's claim may take as the probe a row naming MAIL_FROM's address that was given back for it, not only a due one.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: a worker that may not send a row naming a mailbox whose probe is owed (a rolling deploy that
-- changed MAIL_FROM: for the new release the old address is a sender like any other) gives it back
-- (mailbox_paused). While a probe is out it goes back until that probe surely ends (0092); while none
-- was out yet it went back due 1 s later, so that the owner's claim could still find it due and take
-- it as the probe (mail_from_address_probe_row, 0083): such a row was claimed, checked and given back
-- about once a second for as long as no probe went out (bench/rolling-owed-rows.ts … none-out: one
-- row 0.9 claims and 7.4 statements a second; 100 rows 25 claims, 92 rows and 373 statements a
-- second). Held longer, it would be due at none of the owner's claims, and the probe would wait for
-- another of MAIL_FROM's rows.
--
-- Now the worker of this release gives such a row back for a minute at most (the owed state's end
-- brings it due at once, 0092/0116), and the owner's claim takes as the probe the first row naming
-- MAIL_FROM's address that is due or, while the probe is owed, given back for a pause (a row given
-- back for MAIL_FROM's own throttle is due once that pause is over, and the probe is not looked for
-- while it stands). So the probe goes no later than before: at the owner's claim, where it found
-- such a row due only between its give-back's second and the next claim of it.
--
-- Cost: the same descent of email_outbox_sender_key_idx (sender_key, priority, send_at, id), its
-- rows in claim order, a row due or given back passing at once (a row scheduled for later by its
-- application is read and passed over); the probe's owed state by mailbox_pacing's primary key, read
-- only at a row due later. Asked only where the owner's claim would wait (0083); claim_batch and the
-- hot path untouched. Same signature and answer; not security definer.
--
-- Older binaries: claim_past_paused (theirs too) calls this piece by name, so an owner of an earlier
-- release takes such rows as its probe as well; their own give-backs (due 1 s later while none is
-- out) are as before.
--! older-binaries-compatible

-- The first row in claim order naming MAIL_FROM's address, due or, while its probe is owed, given
-- back for it (mailbox_paused), locked. Invariant: only a pending row of that sender key, skip locked.
create or replace function mailer.mail_from_address_probe_row(paused_key text, out id bigint,
                                                              out row_ctid tid, out ambiguous boolean)
returns record language sql volatile as $$
  select o.id, o.ctid, o.send_started_at is not null
    from mailer.email_outbox o
   where o.status = 'pending' and o.sender_key is not null and o.sender_key = paused_key
     and (o.send_at <= now()
          or (o.last_error_code = 'mailbox_paused'
              and exists (select from mailer.mailbox_pacing p where p.mailbox = paused_key and p.probe_owed)))
   order by o.priority, o.send_at, o.id
   limit 1
   for update of o skip locked
$$;
