-- 0188: a template row's sender key is the mailbox the worker renders, its blanks read as JavaScript reads them, in every database.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: mailer.row_sender_key and mailer.address_key (0039) key a row's sender mailbox, which holds
-- the row back while that mailbox is paused (claim_past_paused, the pauses' row moves, owed-probe
-- wakes), tells MAIL_FROM's rows from others, and decides which rows a token confined by a
-- `senders` claim may retry. For a template's from_address they read the blanks after the > and of
-- an empty "Name <>" with \s, the database locale's (ASCII alone in C; U+3000, U+00A0 and more in an
-- ICU or glibc UTF-8 database, but not U+FEFF), and trimmed the address with btrim (spaces alone).
-- The worker renders from_address as JavaScript reads it (render.ts, config/sender-address.ts:
-- \s, trim()), and 0031 takes a template so written. So "Desk <desk@example.com>" followed by a
-- no-break or ideographic space (C database), "Desk <\tdesk@example.com>" or a bare address between
-- U+3000s (any database) keyed its rows "desk <desk@example.com> " or "\tdesk@example.com", a
-- mailbox no pause names and no senders claim lists: such rows were claimed and given back while
-- desk@example.com stood paused, and a token confined to desk@example.com was refused their retry
-- (sender_not_allowed), though their mail goes from that mailbox; "Desk <\u00a0>" (MAIL_FROM's
-- row) was keyed as a named sender. Now both read JavaScript's blanks (mailer.js_trim's, 0031),
-- spelt out, so the key is the rendered address, trimmed and lower case, in every database.
-- (Lower case is still lower()'s, the database's: a non-ASCII capital in a local part keys apart
-- from the worker's in a C database, as before.)
--
-- A message's from is stored {"address", "name"} by enqueue, the address trimmed and without a
-- blank: its key is as before. Unsent rows of a template whose from_address holds a character other
-- than printable ASCII and space are keyed again (the outbox read once, only when such a template
-- exists). Both functions keep their signatures, language, volatility, privileges and settings
-- (row_sender_key's pinned by 0050, restated here; address_key, SQL, has none).
--
-- Older binaries key their inserts through these functions too (a trigger) and read the key only
-- in SQL: each row is keyed as the mailbox it is sent from, whichever binary sends it.
--! older-binaries-compatible

-- 0039's address_key, JavaScript's blanks after the > and around the address.
create or replace function mailer.address_key(a text) returns text language sql immutable as $$
  select nullif(lower(mailer.js_trim(coalesce(
    (regexp_match(a, '<([^<>]*)>[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$'))[1], a))), '')
$$;

-- 0039's row_sender_key, render.ts's NO_ADDRESS spelt out.
create or replace function mailer.row_sender_key(message jsonb, template_name text) returns text
language plpgsql stable set search_path = pg_catalog, pg_temp set standard_conforming_strings = on as $$
declare
  f jsonb;
  t text;
begin
  if template_name is not null then
    select from_address into t from mailer.templates where name = template_name;
    -- None, or one that renders to no address (a name before an empty <>): MAIL_FROM.
    if t is null or t ~ '^(?:[^<>]*<[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*>)?[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$' then
      return null;
    end if;
    if strpos(t, '{{') > 0 then return '?'; end if;
    return coalesce(mailer.address_key(t), '?');
  end if;
  f := message -> 'from';
  if f is null or jsonb_typeof(f) = 'null' then return null; end if;
  if jsonb_typeof(f) = 'object' then return coalesce(mailer.address_key(f ->> 'address'), '?'); end if;
  if jsonb_typeof(f) = 'string' then return coalesce(mailer.address_key(f #>> '{}'), '?'); end if;
  return '?';
end $$;

-- The rows keyed apart before: only a from_address outside printable ASCII and space can key
-- differently now (\s and btrim read those alike).
do $$
begin
  if exists (select 1 from mailer.templates
              where from_address ~ '[^\x21-\x7e ]' and strpos(from_address, '{{') = 0) then
    update mailer.email_outbox o
       set sender_key = mailer.row_sender_key(o.message, o.template)
     where o.template in (select name from mailer.templates
                           where from_address ~ '[^\x21-\x7e ]' and strpos(from_address, '{{') = 0)
       and o.status <> 'sent'
       and o.sender_key is distinct from mailer.row_sender_key(o.message, o.template);
  end if;
end $$;
