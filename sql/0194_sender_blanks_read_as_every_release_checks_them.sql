-- 0194: a sender written "Name <address>" takes ASCII's blanks alone after the > and around a quoted name, so that an older release's API check reads the address stored; older binaries keep working.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: 0177 takes the blanks of blank-body.ts (0175's class: the rest of Unicode's White_Space,
-- the zero-width ones) around a string written "Name <address>", in every database, and this
-- release's API reads message.from so to hold it to MAIL_FROM_ALLOWED and a token's `senders`
-- claim, which no worker asks again (src/api/enqueued-sender.ts). A machine of an earlier release
-- serving the API beside this schema (during a deploy, or after a rollback) reads ASCII blanks
-- alone there: "Boss <ceo@example.com>" followed by a no-break or an ideographic space, or a
-- quoted name followed by one ('"Boss"\u3000<ceo@example.com>'), names no address it reads, so it
-- asks neither list, and enqueue stored the row sent from ceo@example.com: a token confined to
-- other mailboxes sent as any mailbox the app may send as. New in a C database with 0177; so in
-- an ICU or glibc UTF-8 one before it, whose \s took those blanks.
--
-- Now message.from, the sender, is refused (22023, message.from "is not a valid e-mail address:
-- …") when such a blank stands after its > or before or after its quoted name, where that check
-- reads ASCII's alone; between the words of an unquoted name (which that check reads as the name's)
-- and in to, cc, bcc and replyTo, which no list is asked about, 0177's blanks are taken as before.
-- So every sender stored is one that check reads as the address stored, in every database. An
-- object {"address", "name"} is unchanged. A keyed repeat of a request whose row holds such a
-- sender (stored by an ICU or glibc UTF-8 database, or by 0177) is refused as a new one is.
-- normalize_recipients otherwise as in 0177 (same signature, privileges, owner, pinned settings:
-- create or replace keeps them). This release's API reads the sender the same way
-- (src/outbox/email-address.ts namedSender) and leaves such a one to this refusal (400).
--
-- Older binaries enqueue through this function: such a sender is refused (a 400 naming message.from,
-- as a C database refused it before 0177), which closes their check's gap; nothing else changes.
-- Their workers send the rows stored before as they did.
--! older-binaries-compatible

-- 0177's normalize_recipients, the sender's blanks outside its name ASCII's (0194).
create or replace function mailer.normalize_recipients(v jsonb, field text) returns jsonb language plpgsql immutable
  set search_path = pg_catalog, pg_temp set standard_conforming_strings = on as $$
declare
  item jsonb;
  i int := 0;
  out jsonb := '[]';
  addr text;
  named text[];
  -- from is one address, and a lone value of any other field was sent as one: such an entry is
  -- the field itself. A list's entries are named by their index.
  one boolean := field = 'message.from' or jsonb_typeof(v) <> 'array';
  entry text;
  pieces text[];
  why text;
  tail text[];
  held int;
  told boolean;
  advice text;
begin
  if v is null or v = 'null'::jsonb then return '[]'; end if;
  if jsonb_typeof(v) <> 'array' then v := jsonb_build_array(v); end if;
  for item in select value from jsonb_array_elements(v) loop
    entry := case when one then field else format('%s[%s]', field, i) end;
    if jsonb_typeof(item) = 'string' then
      addr := btrim(item #>> '{}');
      if mailer.is_email_address(addr) then
        out := out || jsonb_build_array(jsonb_build_object('address', addr));
      else
        -- "Name <address>": a quoted name, or one without " < > @ , ; (no list read as one entry).
        -- Blanks around it, between a list's entries and a name's words are 0175's class, spelt
        -- out as email-address.ts spells them: a class shorthand would be the locale's (0177).
        named := regexp_match(item #>> '{}', '^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*(?:"([^"]*)"|([^"<>@,;]*))[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*<([^<>]*)>[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*$');
        if named is null or not mailer.is_email_address(btrim(named[3])) then
          why := mailer.address_refusal(coalesce(btrim(named[3]), addr));
          told := false;
          advice := case when field = 'message.from'
                         then 'from is one address, the sender (to, cc and bcc take a JSON list)'
                         else 'give each its own entry in a JSON list, as ["ann@example.com", "Bob <bob@example.com>"]' end;
          -- A list joined into one string: two pieces or more, each an address, alone or "Name
          -- <address>" (a separator closing the list, as a mail client copies it, is no piece).
          if named is null and addr ~ '[,;]' then
            pieces := regexp_split_to_array(regexp_replace(addr, '^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff,;]+|[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff,;]+$', '', 'g'), '[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*[,;][\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*');
            if cardinality(pieces) > 1 and not exists (select 1 from unnest(pieces) p
                            where not mailer.is_email_address(p)
                              and (regexp_match(p, '^(?:"[^"]*"|[^"<>@,;]*)[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*<([^<>]*)>$') is null
                                   or not mailer.is_email_address(btrim((regexp_match(p, '<([^<>]*)>$'))[1])))) then
              why := format('is not a valid e-mail address: it holds %s addresses separated by , or ;: %s',
                cardinality(pieces), advice);
              told := true;
            end if;
          end if;
          -- Else "Name <address>" whose name, outside double quotes, holds addresses: the words of
          -- it (between blanks, < > , ; ") that are one.
          if named is null and not told then
            tail := regexp_match(item #>> '{}', '^(.*)<([^<>]*)>[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*$');
            if tail is not null and mailer.is_email_address(btrim(tail[2]))
               and btrim(tail[1]) !~ '^"[^"]*"$' then
              select count(*) into held from regexp_matches(tail[1], '[^\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff<>,;"]+', 'g') w
               where mailer.is_email_address(w[1]);
              if held > 0 then
                why := format('is not a valid e-mail address: it holds %s addresses, %s in its display name: %s; a display name meant to show an address goes in double quotes',
                  held + 1, held, advice);
              end if;
            end if;
          end if;
          perform mailer.invalid(entry, why);
        end if;
        -- The sender (0194): a blank other than ASCII's after the >, or before or after a quoted
        -- name, is one an earlier release's API check does not read: it would ask no list.
        if field = 'message.from'
           and (item #>> '{}') !~ '^[\t\n\v\f\r ]*(?:"[^"]*"|[^"<>@,;]*)[\t\n\v\f\r ]*<[^<>]*>[\t\n\v\f\r ]*$' then
          perform mailer.invalid(entry, 'is not a valid e-mail address: a sender written "Name <address>" takes no blank but spaces, tabs and line breaks after its > and around a quoted name (not a no-break, ideographic or zero-width space)');
        end if;
        out := out || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
          'address', btrim(named[3]),
          'name', nullif(btrim(mailer.fold_control_characters(coalesce(named[1], named[2]))), ''))));
      end if;
    elsif jsonb_typeof(item) = 'object' then
      if exists (select 1 from jsonb_object_keys(item) k where k not in ('address', 'name')) then
        perform mailer.invalid(entry, 'may only have the keys address and name');
      end if;
      addr := btrim(item ->> 'address');
      if jsonb_typeof(item -> 'address') is distinct from 'string' or not mailer.is_email_address(addr) then
        perform mailer.invalid(format('%s.address', entry), mailer.address_refusal(addr));
      end if;
      if item ? 'name' and jsonb_typeof(item -> 'name') not in ('string', 'null') then
        perform mailer.invalid(format('%s.name', entry), 'must be a string');
      end if;
      out := out || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object('address', addr, 'name', mailer.fold_control_characters(item ->> 'name'))));
    else
      perform mailer.invalid(entry, 'must be an address string or {"address","name"}');
    end if;
    i := i + 1;
  end loop;
  return out;
end $$;
