-- 0135: mailer.header_refusal reads a large message's header fields only, not its bodies and attachments.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: enqueue_email (through normalize_message, and for a keyed request itself) calls
-- header_refusal for every message whose jsonb passes 256 KB: every large message. A SQL function
-- called so is planned with its argument's value in the plan (a custom plan: the first five calls
-- of a session, and more), so a 3.5 MB message was copied into the plans of its two subqueries and
-- read at planning, to count fields that hold a few hundred bytes. Round 46 (bigattach): on a
-- fresh connection a near-limit enqueue cost Postgres 160-660 ms of CPU, the first calls the most.
-- Now PL/pgSQL: its one expression takes the message without text, html and attachments (an
-- expression is planned once, without the value) and only that enters the query.
--
-- Same answer: the two refusals read headers, subject, from, to, cc and replyTo only
-- (header_lines_bytes), all kept; the bound before counting (the jsonb past 256 KB) holds for
-- those fields alone, as each takes at least as many bytes in jsonb as in its header line (a key
-- and its JEntries against "Name: " and CRLF, a recipient's object against ", " and "<>"). Same
-- signature, privileges and owner; the settings pinned as 0050 pins every PL/pgSQL function.
--
-- Older binaries call enqueue_email and normalize_message as before; only their cost changes.
--! older-binaries-compatible

create or replace function mailer.header_refusal(m jsonb) returns text[] language plpgsql immutable parallel safe
  set search_path = pg_catalog, pg_temp set standard_conforming_strings = on as $$
declare
  -- All the two refusals read (header_lines_bytes), none of the MB-sized values; a value that is
  -- not an object (no caller passes one) as 0087 took it, refused by neither (a scalar's - raises).
  fields jsonb := case when jsonb_typeof(m) = 'object' then m - array['text', 'html', 'attachments'] else m end;
begin
  return coalesce(
    (select array[format('message.headers.%s', k),
                  format('is the same header as %s (header names are case-insensitive): give one of them', o)]
       from jsonb_object_keys(fields -> 'headers') with ordinality h(k, i),
            lateral (select o from jsonb_object_keys(fields -> 'headers') o
                      where lower(o) = lower(k) and o collate "C" > k collate "C" limit 1) other
      order by i limit 1),
    (select array['message',
                  format('has a header of at least %s bytes (its subject, from, to, cc, replyTo and X- headers as lines): Exchange Online takes a message header of at most 262144 bytes (256 KB)', b)]
       from (select mailer.header_lines_bytes(fields) as b where pg_column_size(fields) > 262144) x
      where b > 262144));
end $$;
