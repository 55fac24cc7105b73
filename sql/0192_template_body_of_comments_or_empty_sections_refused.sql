-- 0192: a template whose bodies render blank for every row through their tags (comments, partials, sections holding no text and no placeholder) is refused where it is written, as 0177 refuses one without a tag.
-- Forward-only. Never edit this file after release: add a new numbered file instead.
--
-- Why: 0177 refuses a template whose text_body and html_body (those it has) are empty or blanks
-- only without a placeholder, since every row it renders fails at send (template_error: a mail
-- without a body is not sent). It asked only whether a body held "{{": a body of a comment alone
-- ("{{! write the body }}"), of sections holding nothing ("{{#items}}{{/items}}", "{{^a}} {{/a}}")
-- or of a partial (none is ever given: it renders nothing) was taken, and failed every row its
-- trigger enqueued, one by one, found only in status's failures.
--
-- mailer.template_body_renders_blank reads a body as mustache.js does (the tokens of
-- mailer.mustache_problem, 0031: a tag's type after the blanks mustache skips, "{{{" closed by
-- "}}}"): it is blank for every row when it has no variable tag ({{name}}, {{{name}}}, {{&name}}:
-- a column may fill it) and its text outside tags (inside a section or not: a row may open the
-- section) is 0175's blanks alone, spelt out as 0177 spells them. A delimiter change ({{=…=}}) is
-- not followed: such a body may render, and is taken as before. A body mustache cannot parse is
-- refused by mustache_problem first.
--
-- mailer.check_template is 0177's with that read in place of 0177's "no {{ and blanks only": a
-- body without a tag is judged as before, in 0177's words; one with tags is named with what it
-- lacks. Same signature, language, owner and pinned settings (create or replace keeps them and the
-- trigger). Templates stored before are kept as they are; the deploy guide's step 6 check lists them.
--
-- Older binaries write no template (`bun run dev`'s demo one passes) and render as before.
--! older-binaries-compatible

-- Whether a template body renders nothing but blanks for every row (see above); null for null.
create function mailer.template_body_renders_blank(tpl text) returns boolean language plpgsql immutable parallel safe
  set search_path = pg_catalog, pg_temp set standard_conforming_strings = on as $$
declare
  pieces text[] := string_to_array(tpl, '{{');
  n int := cardinality(pieces);
  i int := 2;
  at int;
  kind text;
  blank constant text := '^[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200d\u2028\u2029\u202f\u205f\u2060\u3000\ufeff]*$';
begin
  if tpl is null then return null; end if;
  if pieces[1] !~ blank then return false; end if;
  while i <= n loop
    -- As mustache_problem: blank up to a {{ of its own is a {{{ tag.
    if i < n and pieces[i] ~ '^[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*$' then
      kind := '{';
    else
      kind := substring(pieces[i] from '^[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*([#^/>{&=!]?)');
    end if;
    -- A variable a column fills, or delimiters this read does not follow: it may render.
    if kind not in ('#', '^', '/', '>', '!') then
      return false;
    end if;
    loop
      at := strpos(pieces[i], '}}');
      exit when at > 0;
      i := i + 1;
      if i > n then return false; end if;
    end loop;
    -- The text after the tag, up to the next {{.
    if substr(pieces[i], at + 2) !~ blank then return false; end if;
    i := i + 1;
  end loop;
  return true;
end $$;

create or replace function mailer.check_template() returns trigger language plpgsql
  set search_path = pg_catalog, pg_temp set standard_conforming_strings = on as $$
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
  -- renderedBodies: the bodies the template has (one at least, templates_body_check) each render
  -- blank for every row (0177: empty or blanks only without a tag; 0192: through their tags too)
  -- and fail it. Named at text_body when it has one, as render.ts names them; 0177's words for
  -- bodies without a tag.
  if (new.text_body is not null or new.html_body is not null)
     and coalesce(mailer.template_body_renders_blank(new.text_body), true)
     and coalesce(mailer.template_body_renders_blank(new.html_body), true) then
    perform mailer.invalid(case when new.text_body is not null then 'text_body' else 'html_body' end,
      case when coalesce(strpos(new.text_body, '{{'), 0) + coalesce(strpos(new.html_body, '{{'), 0) > 0
           then case when new.text_body is not null and new.html_body is not null
                     then 'has no placeholder and no text but blanks outside its tags (comments, partials and sections holding neither), nor has html_body: every mail of the template would render them blank and fail (a mail without a body is not sent)'
                     else 'has no placeholder and no text but blanks outside its tags (comments, partials and sections holding neither): every mail of the template would render it blank and fail (a mail without a body is not sent)' end
           when new.text_body is not null and new.html_body is not null
           then 'is empty or blanks only, as is html_body, and neither has a placeholder: every mail of the template would fail (a mail without a body is not sent)'
           else 'is empty or blanks only and has no placeholder: every mail of the template would fail (a mail without a body is not sent)' end);
  end if;
  return new;
end $$;
