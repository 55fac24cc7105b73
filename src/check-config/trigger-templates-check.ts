// Trigger templates check: each enabled trigger calling mailer.enqueue_from_row names a template that exists, with a body a row can fill, whose placeholders name columns its table's rows carry.
import type pg from 'pg'
import { rendersBlankForEveryRow } from '../outbox/blank-template-body.ts'
import { placeholderNames } from '../outbox/template-fill.ts'

interface TriggerRow {
  trigger: string
  table: string
  args: string[]
  columns: string[]
}

interface TemplateFields {
  name: string
  subject: string
  text_body: string | null
  html_body: string | null
  to_addresses: string[]
  cc_addresses: string[]
  bcc_addresses: string[]
  reply_to: string | null
  from_address: string | null
}

/**
 * Read from the catalog and mailer.templates, changing nothing. Invariant: a trigger's arguments
 * are the template's name and, optionally, its options' JSON (pg_trigger.tgargs, each ended by a
 * NUL); a disabled trigger (tgenabled 'D') fires for no insert and is left out.
 */
async function readTriggers(pool: pg.Pool): Promise<TriggerRow[]> {
  const { rows } = await pool.query<{
    trigger: string
    table: string
    args: Buffer
    columns: string[] | null
  }>(
    `select t.tgname::text as trigger, t.tgargs as args,
            (select format('%I.%I', n.nspname, c.relname) from pg_class c
               join pg_namespace n on n.oid = c.relnamespace where c.oid = t.tgrelid) as "table",
            (select array_agg(a.attname::text order by a.attnum) from pg_attribute a
              where a.attrelid = t.tgrelid and a.attnum > 0 and not a.attisdropped) as columns
       from pg_trigger t
      where t.tgfoid = to_regproc('mailer.enqueue_from_row') and not t.tgisinternal
        and t.tgenabled <> 'D'
      order by "table", trigger`,
  )
  return rows.map((r) => ({
    trigger: r.trigger,
    table: r.table,
    args: r.args.toString('utf8').split('\0').slice(0, -1),
    columns: r.columns ?? [],
  }))
}

/** The `columns` option's names, when the trigger's options name them; null: every column is kept. */
function keptColumns(optionsJson: string | undefined): string[] | null {
  if (optionsJson === undefined) return null
  try {
    const columns = (JSON.parse(optionsJson) as { columns?: unknown }).columns
    return Array.isArray(columns) ? columns.filter((c) => typeof c === 'string') : null
  } catch {
    // An options argument that is not JSON fails every insert, saying so: nothing to add here.
    return null
  }
}

/** Each field of `t` with the names its placeholders look up, as [field, names]. */
function fieldNames(t: TemplateFields): [string, string[]][] {
  const fields: [string, string | null][] = [
    ['subject', t.subject],
    ['text_body', t.text_body],
    ['html_body', t.html_body],
    ['reply_to', t.reply_to],
    ['from_address', t.from_address],
    ...t.to_addresses.map((a, i): [string, string] => [`to_addresses[${i}]`, a]),
    ...t.cc_addresses.map((a, i): [string, string] => [`cc_addresses[${i}]`, a]),
    ...t.bcc_addresses.map((a, i): [string, string] => [`bcc_addresses[${i}]`, a]),
  ]
  return fields.flatMap(([field, tpl]) => {
    const names = tpl === null ? null : placeholderNames(tpl)
    return names && names.length > 0 ? [[field, names] as [string, string[]]] : []
  })
}

/**
 * Warnings for `where`, one per trigger whose mails would all fail (or whose inserts would): its
 * template missing, its bodies blank for every row (stored before 0177), or a placeholder naming no
 * column its rows keep (`{{col}}`, or a dotted `{{col.field}}` whose `col` is none). What a json
 * column holds inside is not known here.
 */
export async function checkTriggerTemplates(pool: pg.Pool, where: string): Promise<string[]> {
  const triggers = await readTriggers(pool)
  if (triggers.length === 0) return []
  const { rows: templates } = await pool.query<TemplateFields>(
    `select name, subject, text_body, html_body, to_addresses, cc_addresses, bcc_addresses,
            reply_to, from_address
       from mailer.templates where name = any($1::text[])`,
    [[...new Set(triggers.map((t) => t.args[0] ?? ''))]],
  )
  const byName = new Map(templates.map((t) => [t.name, t]))
  const warnings: string[] = []
  for (const tr of triggers) {
    const name = tr.args[0] ?? ''
    const on = `trigger ${tr.trigger} on ${tr.table}`
    const template = byName.get(name)
    if (!template) {
      warnings.push(
        `warning: ${where}: ${on} names template "${name}", which does not exist: every insert into ${tr.table} fails (mailer: unknown template); insert it into mailer.templates (deploy guide, step 7)`,
      )
      continue
    }
    // Stored before 0177 refused it (or with its check off): no body a row could fill.
    const bodies = [template.text_body, template.html_body].filter((b) => b !== null)
    if (bodies.every(rendersBlankForEveryRow)) {
      const which =
        bodies.length === 2
          ? 'a text_body and an html_body that render'
          : `a ${template.text_body !== null ? 'text_body' : 'html_body'} that renders`
      warnings.push(
        `warning: ${where}: ${on}: template "${name}" has ${which} blank for every row (no placeholder and no text but blanks outside its tags): every mail it enqueues fails with template_error; fix the template, then retry the rows failed so (README, "How it works")`,
      )
      continue
    }
    const kept = keptColumns(tr.args[1])
    const columns = new Set(kept ? tr.columns.filter((c) => kept.includes(c)) : tr.columns)
    const has = (n: string) => columns.has(n) || columns.has(n.split('.')[0]!)
    const missing = fieldNames(template).flatMap(([field, names]) =>
      names.filter((n) => !has(n)).map((n) => `{{${n}}} (${field})`),
    )
    if (missing.length > 0) {
      const holds = kept
        ? `no column of ${tr.table} that the trigger's "columns" option keeps holds`
        : `no column of ${tr.table} holds`
      warnings.push(
        `warning: ${where}: ${on}: template "${name}" names ${[...new Set(missing)].join(', ')}, which ${holds}: every mail it enqueues fails with template_error; fix the template${kept ? ' or the option' : ''}, then retry the rows failed so (README, "How it works")`,
      )
    }
  }
  return warnings
}
