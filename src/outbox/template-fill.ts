// Fills one template field from a source row with Mustache, logic-less: JSON columns print as JSON, a missing column is an error.
import Mustache from 'mustache'
import { ExactNumber } from './exact-json.ts'
import { RenderError } from './render-error.ts'

/**
 * Mustache, logic-less: values are inserted once and never rendered again. Only html_body escapes.
 * A placeholder naming a column the row does not have is an error, not an empty string.
 */
export function fill(
  field: string,
  tpl: string,
  view: Record<string, unknown>,
  html: boolean,
): string {
  let tokens: unknown[]
  try {
    tokens = Mustache.parse(tpl)
  } catch (e) {
    throw new RenderError('template_error', `${field}: ${(e as Error).message}`)
  }
  for (const name of placeholders(tokens)) {
    if (name !== '.' && !hasPath(view, name)) {
      throw new RenderError('template_error', `${field}: placeholder {{${name}}} has no column`)
    }
  }
  return jsonWriter.render(tpl, view, {}, html ? undefined : { escape: (v: unknown) => String(v) })
}

// A json/jsonb column reaches the view as an object or an array, which Mustache would print as
// "[object Object]": a placeholder shows its JSON text instead. An array of plain values (a text[]
// column) keeps Mustache's "a,b", as it always rendered. Sections ({{#col}}) and dotted names
// ({{col.field}}) still see the value itself. A number kept as Postgres wrote it (ExactNumber: 12.50)
// prints that text, and is as falsy as its value in a section ({{^shipping}}free{{/shipping}} at 0.00).
const isObject = (v: unknown): v is object =>
  v !== null && typeof v === 'object' && !(v instanceof ExactNumber)
const asText = (v: unknown) =>
  isObject(v) && !(Array.isArray(v) && !v.some(isObject)) ? JSON.stringify(v) : v
const jsonContext = (context: Mustache.Context) =>
  ({ lookup: (name: string) => asText(ownLookup(context, name)) }) as Mustache.Context
// The same context (push, view) but for a zero ExactNumber, which a section sees as 0.
const sectionContext = (context: Mustache.Context): Mustache.Context =>
  Object.create(context, {
    lookup: {
      value: (name: string) => {
        const v = ownLookup(context, name)
        return v instanceof ExactNumber && v.value === 0 ? 0 : v
      },
    },
  })

class JsonValueWriter extends Mustache.Writer {
  override escapedValue(
    token: string[],
    context: Mustache.Context,
    config?: Mustache.RenderOptions,
  ): string {
    return super.escapedValue(token, jsonContext(context), config)
  }
  override unescapedValue(token: string[], context: Mustache.Context): string {
    return super.unescapedValue(token, jsonContext(context))
  }
  override renderSection(
    token: string[],
    context: Mustache.Context,
    partials?: Mustache.PartialsOrLookupFn,
    originalTemplate?: string,
    config?: Mustache.RenderOptions,
  ): string {
    return super.renderSection(token, sectionContext(context), partials, originalTemplate, config)
  }
  override renderInverted(
    token: string[],
    context: Mustache.Context,
    partials?: Mustache.PartialsOrLookupFn,
    originalTemplate?: string,
    config?: Mustache.RenderOptions,
  ): string {
    return super.renderInverted(token, sectionContext(context), partials, originalTemplate, config)
  }
}
const jsonWriter = new JsonValueWriter()

/**
 * The names a field's placeholders look up in the source row, as fill checks them (outside
 * sections: a name inside one may be its item's); null when mustache cannot parse the field.
 */
export function placeholderNames(tpl: string): string[] | null {
  try {
    return placeholders(Mustache.parse(tpl)).filter((name) => name !== '.')
  } catch {
    return null
  }
}

function placeholders(tokens: unknown[], out: string[] = []): string[] {
  for (const t of tokens as [string, string, number, number, unknown[]?][]) {
    if (t[0] === 'name' || t[0] === '&' || t[0] === '{') out.push(t[1])
    else if (t[0] === '#' || t[0] === '^') {
      out.push(t[1])
      // Names inside sections may refer to the section's item; only top-level names are checked.
    }
  }
  return out
}

const hasPath = (view: Record<string, unknown>, path: string): boolean =>
  ownName(view, path) !== null || ownPath(view, path.split('.'), false) !== null

/**
 * A column whose name holds a dot ("order.id", quoted in SQL) is its whole name's, before the path
 * a dotted name otherwise is: no placeholder reached it, and its row failed with template_error.
 */
const ownName = (view: unknown, name: string): { value: unknown } | null =>
  name.includes('.') && view !== null && typeof view === 'object' && Object.hasOwn(view, name)
    ? { value: (view as Record<string, unknown>)[name] }
    : null

/**
 * Mustache's resolution of a name (the innermost context whose view holds it, then the enclosing
 * ones) through own properties only: what a prototype holds (constructor, toString, __proto__) is
 * no column; Mustache's `in` found it and printed "{}" or "[object Object]". The view is JSON
 * data, so no value is a function for Mustache to call.
 */
function ownLookup(context: Mustache.Context, name: string): unknown {
  if (name === '.') return context.view
  const parts = name.split('.')
  for (let c: Mustache.Context | undefined = context; c; c = c.parent) {
    const found = ownName(c.view, name) ?? ownPath(c.view, parts, true)
    if (found) return found.value
  }
  return undefined
}

/**
 * The value at `parts` when each is an own property of the value before it; null when one is not.
 * With `primitiveLast`, as Mustache, a dotted name's last part may be a primitive's ({{sku.length}}).
 */
function ownPath(
  view: unknown,
  parts: string[],
  primitiveLast: boolean,
): { value: unknown } | null {
  let cur = view
  for (const [i, part] of parts.entries()) {
    const last = primitiveLast && i > 0 && i === parts.length - 1
    const holder: unknown =
      cur !== null && typeof cur === 'object' ? cur : last && cur != null ? Object(cur) : null
    if (holder === null || !Object.hasOwn(holder as object, part)) return null
    cur = (holder as Record<string, unknown>)[part]
  }
  return { value: cur }
}
