-- 0163: enqueue names a refused sender at message.from, not message.from[0], and an address string holding a list says to send a JSON list.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why:
-- - from is one address (normalize_message refuses a list there: "must be a single address"), yet
--   "from": "x" was refused at message.from[0] (POST /v1/outbox: message.from.0), as if it were a
--   list's first entry, and {"address": "x"} at message.from[0].address. The sender's entry is now
--   named by the field: message.from, message.from.address. to, cc, bcc and replyTo keep their
--   index, a lone value too (a list of one, as their paths have always named it).
-- - "to": "a@b.c, c@d.e" (a list joined into one string, as a mail client shows it) was refused as
--   "is not a valid e-mail address", which its writer, reading two valid addresses, could not
--   follow. A string of two pieces or more between , or ; (one closing it, as a mail client copies
--   a list, aside), none of them empty or other than an address (alone or "Name <address>"), now
--   says it holds that many addresses and to give each its own entry in a JSON list (from: that
--   from is one address). Its addresses are not echoed; an example is given. A string of which
--   some piece is no address ("Doe, John <j@b.c>": an unquoted name with a comma) is refused as
--   before.
-- normalize_recipients otherwise as in 0086 (same signature, pinned settings, privileges, owner).
-- What is taken and stored is unchanged; only the path and text of these refusals. The refusal's
-- SQLSTATE (22023) and mailer.invalid's "mailer: <field> <problem>" form are the same, and each
-- problem still opens with "is", so a binary's reading of it (enqueue.ts SQL_PROBLEM) names the
-- field as before.
--
-- Older binaries enqueue through this function as before: they answer these refusals with the new
-- path and text, the rest unchanged.
--! older-binaries-compatible

create or replace function mailer.normalize_recipients(v jsonb, field text) returns jsonb language plpgsql immutable
  set search_path = pg_catalog, pg_temp set standard_conforming_strings = on as $$
declare
  item jsonb;
  i int := 0;
  out jsonb := '[]';
  addr text;
  named text[];
  -- from is one address: its entry is the field itself. Any other field is a list (a lone value a
  -- list of one), each entry named by its index.
  one boolean := field = 'message.from';
  entry text;
  pieces text[];
  why text;
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
        named := regexp_match(item #>> '{}', '^\s*(?:"([^"]*)"|([^"<>@,;]*))\s*<([^<>]*)>\s*$');
        if named is null or not mailer.is_email_address(btrim(named[3])) then
          why := mailer.address_refusal(coalesce(btrim(named[3]), addr));
          -- A list joined into one string: two pieces or more, each an address, alone or "Name
          -- <address>" (a separator closing the list, as a mail client copies it, is no piece).
          if named is null and addr ~ '[,;]' then
            pieces := regexp_split_to_array(btrim(addr, E' \t\n\r,;'), '\s*[,;]\s*');
            if cardinality(pieces) > 1 and not exists (select 1 from unnest(pieces) p
                            where not mailer.is_email_address(p)
                              and (regexp_match(p, '^(?:"[^"]*"|[^"<>@,;]*)\s*<([^<>]*)>$') is null
                                   or not mailer.is_email_address(btrim((regexp_match(p, '<([^<>]*)>$'))[1])))) then
              why := format('is not a valid e-mail address: it holds %s addresses separated by , or ;: %s',
                cardinality(pieces),
                case when one then 'from is one address, the sender (to, cc and bcc take a JSON list)'
                     else 'give each its own entry in a JSON list, as ["ann@example.com", "Bob <bob@example.com>"]' end);
            end if;
          end if;
          perform mailer.invalid(entry, why);
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
