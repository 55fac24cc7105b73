-- 0043: an e-mail address holding a control character or a blank other than ASCII whitespace is no address.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: mailer.is_email_address (0001) refused \s, which is ASCII whitespace in a C-locale database,
-- so "a<U+0001>b@example.com", "ana<U+00A0>maria@example.com" (a no-break space pasted with the
-- address) or "<U+FEFF>ana@example.com" were taken by enqueue_email, POST /v1/outbox and a
-- template's address fields. No mailbox has such an address for Graph to resolve, and the file
-- transport wrote another one: nodemailer drops a control character ("ab@example.com") and splits
-- at a Unicode blank ("ana <maria@example.com>", a mail to maria@example.com). Now the address may
-- hold none of U+0001-U+001F, U+007F-U+009F (the control characters) and the blanks JavaScript's
-- \s holds (U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF),
-- spelled out, so the rule no longer depends on the database's locale (\s of a glibc locale holds
-- U+2028 but not U+00A0). Anything else it took it takes (a local part of other letters).
-- mailer.template_address_renders (0031), which spelled the old rule out, now asks this one.
-- Both functions keep their privileges and owner.
--
-- A row stored before with such an address fails at send with invalid_message naming the field
-- (src/outbox/email-address.ts holds the same rule), before any transport sees it; a stored
-- template with one, at each row it renders (template_error).
--
-- Older binaries enqueue through these functions as before (one more kind of string refused); they
-- send a row stored with such an address before this migration as they did.
--! older-binaries-compatible

create or replace function mailer.is_email_address(a text) returns boolean language sql immutable as $$
  select a is not null and length(a) <= 320
     and a ~ '^[^@\t\n\v\f\r <>(),;:"\[\]\\\x01-\x1f\x7f-\x9f\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$'
$$;

create or replace function mailer.template_address_renders(a text) returns boolean language plpgsql immutable parallel safe as $$
begin
  if a ~ '^(?:[^<>]*<[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*>)?[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$' then
    return true;
  end if;
  return mailer.is_email_address(mailer.js_trim(coalesce(
    (regexp_match(a, '^(.*)<([^<>]+)>[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$'))[2], a)));
end $$;
