-- 0042: a hand UPDATE of message or template re-keys the rows that may still be claimed (pending, sending), not every unsent row.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: 0040's statement trigger re-keyed every row but the sent ones (failed and cancelled
-- included) after any UPDATE naming message or template: it read the whole outbox heap but the
-- sent rows' share, one hand `update ... set message = ... where id = X` took 535 ms and touched
-- 6,458 heap pages with 100,000 kept failed/pending templated rows (linear: seconds at a million),
-- and 674 pages with 20,000 kept failed/cancelled rows (hand-update-rekey.test.ts). A row's key
-- matters only to claims and mailer.defer_paused_rows, which read pending rows; a sending row may
-- go back to pending (given back, or its lease lost). So the trigger re-keys those two statuses,
-- over their partial indexes (email_outbox_claim_idx, email_outbox_sending_idx): a few pages with
-- a small backlog. A failed or cancelled row keeps its key until a retry makes it pending again,
-- and the retry (src/outbox/requeue.ts) re-keys it in the same UPDATE.
--
-- Unchanged: 0040's trigger on mailer.templates (a changed from_address), rare and by hand.
--
-- Older binaries: the trigger keeps their hand updates' pending rows right; their retry does not
-- re-key, so a failed row whose message was changed by hand and is retried by an older binary
-- keeps its old key: it may wait out a pause of the mailbox it was queued for, as before 0040.
--! older-binaries-compatible
create or replace function mailer.rekey_unsent_rows() returns trigger language plpgsql
set enable_seqscan = off
as $$
begin
  update mailer.email_outbox o
     set sender_key = mailer.row_sender_key(o.message, o.template)
   where o.status = 'pending'
     and (o.sender_key is not null or o.template is not null or o.message ? 'from')
     and o.sender_key is distinct from mailer.row_sender_key(o.message, o.template);
  update mailer.email_outbox o
     set sender_key = mailer.row_sender_key(o.message, o.template)
   where o.status = 'sending'
     and (o.sender_key is not null or o.template is not null or o.message ? 'from')
     and o.sender_key is distinct from mailer.row_sender_key(o.message, o.template);
  return null;
end $$;
