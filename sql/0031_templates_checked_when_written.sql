-- 0031: a template that makes every mail it renders fail is refused where it is written.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: mailer.templates took any text in its fields, and a field that fails whatever the source
-- row holds (a from_address that is no address, a {{ never closed) was found only at send: every
-- row a trigger enqueued with the template failed there (template_error), one by one, and whoever
-- wrote the template heard of it from the failed rows. A trigger on the table (before insert or
-- update) now refuses such a template with 22023 naming the field, as render.ts would fail it:
-- - to_addresses, cc_addresses and bcc_addresses holding more than 500 entries together (each
--   renders at most one recipient; a message takes at most 500);
-- - a field mustache cannot parse: a {{ with no }} after it ({{{ with no }}}), a section
--   ({{#name}}, {{^name}}) never closed, a {{/name}} that closes none or not the one open
--   (mustache.js's Unclosed tag, Unclosed section, Unopened section);
-- - an address field without a placeholder (from_address, reply_to, an entry of to_addresses,
--   cc_addresses or bcc_addresses) that is neither an address as render.ts reads one ("Name
--   <address>" or an address, trimmed, mailer.is_email_address's rule) nor empty (nothing, or
--   "Name <>": left out, and for from_address MAIL_FROM is the sender);
-- - a subject without a placeholder that is empty once trimmed and folded (only blanks and control
--   characters: the table's own check takes a tab or a line break as text);
-- - no recipient: every entry of to_addresses, cc_addresses and bcc_addresses empty, none with a
--   placeholder.
-- What a row fills in (a column the row lacks, an address a column makes) is still found at send,
-- row by row; a field that sets other delimiters ({{=<% %>=}}) is not parsed here. Templates stored
-- before are kept as they are, and rows enqueued with them fail at send as before.
--
-- Older binaries write no template (`bun run dev` writes its demo one, which passes).
--! older-binaries-compatible

-- Blanks as JavaScript's \s and trim() know them: what mustache.js skips around a tag's type and
-- name, and what render.ts trims off an address and a subject. Spelled out: \s in a pattern is the
-- database locale's.
create function mailer.js_trim(s text) returns text language sql immutable parallel safe as $$
  select regexp_replace(s,
    '^[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+|[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+$',
    '', 'g')
$$;

-- Why mustache.js (default delimiters) cannot parse the text, as a problem for mailer.invalid; null
-- when it can, or when the text sets other delimiters. Tags are read as its parseTemplate reads
-- them: from the first {{ on, the type after blanks, up to the first }} (}}} after a {), the name
-- trimmed. In one pass: the text split at each {{, every piece searched once (a tag's text holds
-- no {{ unless it runs on into the next piece, and its }} or }}} lies within one piece).
create function mailer.mustache_problem(tpl text) returns text language plpgsql immutable parallel safe as $$
declare
  pieces text[] := string_to_array(tpl, '{{');
  n int := cardinality(pieces);
  i int := 2;
  first int;
  at int;
  kind text;
  tag text;
  name text;
  open_sections text[] := '{}';
  depth int;
begin
  while i <= n loop
    -- A tag opens at the {{ before piece i. Blank up to a {{ of its own: the type is that {.
    first := i;
    if i < n and pieces[i] ~ '^[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$' then
      kind := '{';
    else
      kind := substring(pieces[i] from '^[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*([#^/>{&=!]?)');
    end if;
    if kind = '=' then
      return null;
    end if;
    loop
      at := strpos(pieces[i], case when kind = '{' then '}}}' else '}}' end);
      exit when at > 0;
      i := i + 1;
      if i > n then
        return case when kind = '{' then 'has a {{{ with no }}} after it' else 'has a {{ with no }} after it' end;
      end if;
    end loop;
    if kind in ('#', '^', '/') then
      tag := array_to_string(pieces[first:i - 1] || left(pieces[i], at - 1), '{{');
      name := mailer.js_trim(substr(mailer.js_trim(tag), 2));
      depth := cardinality(open_sections);
      if kind <> '/' then
        open_sections := open_sections || name;
      elsif depth = 0 then
        return format('closes section "%s", which is not open', name);
      elsif open_sections[depth] <> name then
        return format('closes section "%s" while section "%s" is open', name, open_sections[depth]);
      else
        open_sections := open_sections[1:depth - 1];
      end if;
    end if;
    i := i + 1;
  end loop;
  depth := cardinality(open_sections);
  if depth > 0 then
    return format('leaves section "%s" open (no {{/%s}})', open_sections[depth], open_sections[depth]);
  end if;
  return null;
end $$;

-- Whether an address field without a placeholder renders as render.ts's address() takes it: empty
-- (NO_ADDRESS), or "Name <address>" or an address (NAMED, parseAddress) whose address, trimmed,
-- meets mailer.is_email_address's rule (its blanks spelled out as email-address.ts does).
create function mailer.template_address_renders(a text) returns boolean language plpgsql immutable parallel safe as $$
declare
  address text;
begin
  if a ~ '^(?:[^<>]*<[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*>)?[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$' then
    return true;
  end if;
  address := mailer.js_trim(coalesce(
    (regexp_match(a, '^(.*)<([^<>]+)>[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$'))[2], a));
  return length(address) <= 320
     and address ~ '^[^@\t\n\v\f\r <>(),;:"\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$';
end $$;

create function mailer.check_template() returns trigger language plpgsql as $$
declare
  field text;
  value text;
  problem text;
  recipients int := cardinality(new.to_addresses) + cardinality(new.cc_addresses) + cardinality(new.bcc_addresses);
  any_recipient boolean := false;
begin
  if recipients > 500 then
    perform mailer.invalid('to_addresses',
      format('has %s entries with cc_addresses and bcc_addresses; a message takes at most 500 recipients', recipients));
  end if;
  -- Each field as render.ts names it, in its order of fields.
  for field, value in
    select f, v from (
      select 1, 0, 'subject', new.subject union all
      select 2, 0, 'text_body', new.text_body union all
      select 3, 0, 'html_body', new.html_body union all
      select 4, i, format('to_addresses[%s]', i - 1), new.to_addresses[i] from generate_subscripts(new.to_addresses, 1) i union all
      select 5, i, format('cc_addresses[%s]', i - 1), new.cc_addresses[i] from generate_subscripts(new.cc_addresses, 1) i union all
      select 6, i, format('bcc_addresses[%s]', i - 1), new.bcc_addresses[i] from generate_subscripts(new.bcc_addresses, 1) i union all
      select 7, 0, 'reply_to', new.reply_to union all
      select 8, 0, 'from_address', new.from_address) x(o, i, f, v)
    where v is not null
    order by o, i
  loop
    problem := mailer.mustache_problem(value);
    if problem is not null then
      perform mailer.invalid(field, problem);
    end if;
    if field not in ('subject', 'text_body', 'html_body') and strpos(value, '{{') = 0
       and not mailer.template_address_renders(value) then
      perform mailer.invalid(field,
        'is not an e-mail address ("Name <address>" or an address) and has no placeholder: every mail of the template would fail');
    end if;
  end loop;
  -- renderedSubject: trimmed, then each run of control characters folded to a space dropped at
  -- either end; nothing left fails every mail.
  if strpos(new.subject, '{{') = 0 and mailer.js_trim(new.subject) ~ '^[\x01-\x1f\x7f]*$' then
    perform mailer.invalid('subject', 'is empty once trimmed and its control characters folded');
  end if;
  -- Each entry left renders one recipient or fails (refused above) unless empty; a NULL one renders
  -- nothing, as an empty one. None at all is the table's own check (templates_recipient_check).
  select bool_or(strpos(a, '{{') > 0
                 or a !~ '^(?:[^<>]*<[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*>)?[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$')
    into any_recipient
    from unnest(new.to_addresses || new.cc_addresses || new.bcc_addresses) a;
  if recipients > 0 and not coalesce(any_recipient, false) then
    perform mailer.invalid('to_addresses',
      'is required: each entry of to_addresses, cc_addresses and bcc_addresses is empty and has no placeholder');
  end if;
  return new;
end $$;

create trigger templates_checked before insert or update on mailer.templates
  for each row execute function mailer.check_template();
