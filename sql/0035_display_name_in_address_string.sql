-- 0035: mailer.normalize_recipients takes an address written "Name <address>", as a template's address fields and MAIL_FROM do.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: enqueue_email refused "Ann <ann@example.com>" in to, cc, bcc, replyTo and from with
-- "is not a valid e-mail address", while the same text in a template's to_addresses, and in
-- MAIL_FROM, is an address with its display name: an application moving a mail from a template to
-- enqueue_email (or POST /v1/outbox) met a refusal naming an address that is there. Now a string
-- that is no address but is a display name and one address in <…> is stored as {address, name},
-- exactly as {"address","name"} is: the name folded onto one line, none when empty. The name is
-- either in double quotes (any text but a quote: "Doe, John" <john@example.com>) or plain text
-- without " < > @ , ; (so a list in one string, "a@example.com, Bob <b@example.com>", is still
-- refused, never cut down to its last address). Anything else is refused as before, with the same
-- message. A plain address is stored as before.
-- Otherwise as in 0024; the function keeps its privileges and owner.
--
-- Older binaries enqueue through it as before (one more string taken, stored in a shape they send).
-- A row inserted directly with such a string is sent by this release, not by older ones (they fail
-- it with invalid_message naming the field, as they did).
--! older-binaries-compatible
create or replace function mailer.normalize_recipients(v jsonb, field text) returns jsonb language plpgsql immutable as $$
declare
  item jsonb;
  i int := 0;
  out jsonb := '[]';
  addr text;
  named text[];
begin
  if v is null or v = 'null'::jsonb then return '[]'; end if;
  if jsonb_typeof(v) <> 'array' then v := jsonb_build_array(v); end if;
  for item in select value from jsonb_array_elements(v) loop
    if jsonb_typeof(item) = 'string' then
      addr := btrim(item #>> '{}');
      if mailer.is_email_address(addr) then
        out := out || jsonb_build_array(jsonb_build_object('address', addr));
      else
        -- "Name <address>": a quoted name, or one without " < > @ , ; (no list read as one entry).
        named := regexp_match(item #>> '{}', '^\s*(?:"([^"]*)"|([^"<>@,;]*))\s*<([^<>]*)>\s*$');
        if named is null or not mailer.is_email_address(btrim(named[3])) then
          perform mailer.invalid(format('%s[%s]', field, i), 'is not a valid e-mail address');
        end if;
        out := out || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object(
          'address', btrim(named[3]),
          'name', nullif(btrim(mailer.fold_control_characters(coalesce(named[1], named[2]))), ''))));
      end if;
    elsif jsonb_typeof(item) = 'object' then
      if exists (select 1 from jsonb_object_keys(item) k where k not in ('address', 'name')) then
        perform mailer.invalid(format('%s[%s]', field, i), 'may only have the keys address and name');
      end if;
      addr := btrim(item ->> 'address');
      if jsonb_typeof(item -> 'address') is distinct from 'string' or not mailer.is_email_address(addr) then
        perform mailer.invalid(format('%s[%s].address', field, i), 'is not a valid e-mail address');
      end if;
      if item ? 'name' and jsonb_typeof(item -> 'name') not in ('string', 'null') then
        perform mailer.invalid(format('%s[%s].name', field, i), 'must be a string');
      end if;
      out := out || jsonb_build_array(jsonb_strip_nulls(jsonb_build_object('address', addr, 'name', mailer.fold_control_characters(item ->> 'name'))));
    else
      perform mailer.invalid(format('%s[%s]', field, i), 'must be an address string or {"address","name"}');
    end if;
    i := i + 1;
  end loop;
  return out;
end $$;
