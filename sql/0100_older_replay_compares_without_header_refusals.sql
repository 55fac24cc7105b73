-- 0100: mailer.normalize_message(m) no longer makes 0086's two header refusals, so an older binary's replay is answered, not a 500.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: a binary built before 0087 (736b62e and earlier) answers a POST /v1/outbox whose
-- Idempotency-Key names a row by comparing the row with the request through
-- mailer.normalize_message(m), outside the catch that maps enqueue_email's 22023 to a 400. Since
-- 0087, enqueue_email answers a repeat of a request taken before 0086 (two X- headers named alike
-- but for case, a header past 256 KB) with its row, and that comparison then raised 0086's 22023:
-- the same request and any other under the key were a 500 during a rolling deploy (the real
-- 736b62e binary against 0087: 500 internal for both, 400 for a new key), where 0086 alone made
-- them a 400 and today's binary answers 200 with the id, or 422. normalize_message(m) is now
-- normalize_message(m, false): the older comparison is today's (enqueue-replay.ts), so that binary
-- answers the same request 200 with its id and another one 422, as today's binary does.
--
-- Nothing else calls normalize_message(m): enqueue_email (0087) calls normalize_message(m, refuse)
-- and refuses a new request as 0086 does, for every binary; mailer.header_refusal is unchanged. It
-- is a helper of enqueue_email, not part of the SQL surface (README, DESIGN.md); a caller of it
-- still meets every other refusal. Same signature, privileges, owner and pinned settings (0050).
--
-- Older binaries: their enqueue goes through enqueue_email as before; their replay is answered.
--! older-binaries-compatible

create or replace function mailer.normalize_message(m jsonb) returns jsonb language plpgsql immutable
  set search_path = pg_catalog, pg_temp set standard_conforming_strings = on as $$
begin
  return mailer.normalize_message(m, false);
end $$;
