-- 0168: a recipient string whose display name holds an address says how many it holds, and a lone (non-list) recipient is named by its field (message.to), not as a list's first entry (message.to[0]).
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why:
-- - "Ann ann@example.com <bob@example.com>" or "Ann <ann@example.com> Bob <bob@example.com>" (a
--   list with its separator lost, or an address typed into a name field) was refused as "is not a
--   valid e-mail address", which its writer, reading valid addresses, could not follow; one
--   separated by , or ; was told (0163) that it holds that many addresses. A string ending in
--   <address> whose display name, outside double quotes, holds an address (a word of it that is
--   one, bracketed or bare) now says it holds that many, how many in its display name, to give each
--   its own entry in a JSON list (from: that from is one address) and that a name meant to show an
--   address goes in double quotes. Its addresses are not echoed. What is refused is unchanged: an
--   unquoted name holds no " < > @ , ; (0035), and a quoted one may hold anything but a quote
--   ("Ann <ann@example.com>" <bob@example.com> is taken, RFC 5322's quoted-string, as before). The
--   template renderer refuses a rendered name holding an address other than its own and takes
--   these words for it (src/outbox/rendered-address.ts).
-- - A lone value ("to": "x", "to": {"address": "x"}) was named message.to[0] (message.to[0].address),
--   as if sent as a list of one; POST /v1/outbox renamed it message.to in its answer (round 52),
--   while SQL callers of mailer.enqueue_email and a stored row's lastError still read [0]. A lone
--   value is now named by its field, as from is (0163); a list's entries keep their index.
-- normalize_recipients otherwise as in 0163 (same signature, pinned settings, privileges, owner).
-- What is taken and stored is unchanged; only the path and text of refusals. The new test runs on
-- the refusal path alone: an address taken pays one boolean more.
--
-- Older binaries enqueue through this function as before: they answer these refusals with the new
-- path and text (a binary whose API renamed message.to[0] finds nothing to rename; one before it
-- passes message.to on as the problem's path, as it passes message.from), the rest unchanged.
--! older-binaries-compatible

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
        named := regexp_match(item #>> '{}', '^\s*(?:"([^"]*)"|([^"<>@,;]*))\s*<([^<>]*)>\s*$');
        if named is null or not mailer.is_email_address(btrim(named[3])) then
          why := mailer.address_refusal(coalesce(btrim(named[3]), addr));
          told := false;
          advice := case when field = 'message.from'
                         then 'from is one address, the sender (to, cc and bcc take a JSON list)'
                         else 'give each its own entry in a JSON list, as ["ann@example.com", "Bob <bob@example.com>"]' end;
          -- A list joined into one string: two pieces or more, each an address, alone or "Name
          -- <address>" (a separator closing the list, as a mail client copies it, is no piece).
          if named is null and addr ~ '[,;]' then
            pieces := regexp_split_to_array(btrim(addr, E' \t\n\r,;'), '\s*[,;]\s*');
            if cardinality(pieces) > 1 and not exists (select 1 from unnest(pieces) p
                            where not mailer.is_email_address(p)
                              and (regexp_match(p, '^(?:"[^"]*"|[^"<>@,;]*)\s*<([^<>]*)>$') is null
                                   or not mailer.is_email_address(btrim((regexp_match(p, '<([^<>]*)>$'))[1])))) then
              why := format('is not a valid e-mail address: it holds %s addresses separated by , or ;: %s',
                cardinality(pieces), advice);
              told := true;
            end if;
          end if;
          -- Else "Name <address>" whose name, outside double quotes, holds addresses: the words of
          -- it (between blanks, < > , ; ") that are one.
          if named is null and not told then
            tail := regexp_match(item #>> '{}', '^(.*)<([^<>]*)>\s*$');
            if tail is not null and mailer.is_email_address(btrim(tail[2]))
               and btrim(tail[1]) !~ '^"[^"]*"$' then
              select count(*) into held from regexp_matches(tail[1], '[^\s<>,;"]+', 'g') w
               where mailer.is_email_address(w[1]);
              if held > 0 then
                why := format('is not a valid e-mail address: it holds %s addresses, %s in its display name: %s; a display name meant to show an address goes in double quotes',
                  held + 1, held, advice);
              end if;
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
