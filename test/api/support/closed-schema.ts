// JSON Schemas of the document, closed (no undeclared property passes) and walked for the properties they declare.

export type Schema = {
  $ref?: string
  type?: string | string[]
  properties?: Record<string, Schema>
  additionalProperties?: boolean | Schema
  items?: Schema
  anyOf?: Schema[]
  oneOf?: Schema[]
  allOf?: Schema[]
  [k: string]: unknown
}

/**
 * A copy in which every object that lists its properties and says nothing of others refuses
 * others: zod's plain objects strip unknown keys on input, so the document leaves them open, yet a
 * field the server sends and the document does not declare is a mismatch. Loose objects (an
 * explicit `additionalProperties`) stay as they are. An `allOf` (zod's `.extend()` of a named
 * object, or a ref with a description) becomes the one object it means, else closing each part
 * would refuse the other parts' properties.
 */
export function closeSchema<T>(node: T, components: Record<string, Schema>): T {
  if (Array.isArray(node)) return node.map((n) => closeSchema(n, components)) as T
  if (node === null || typeof node !== 'object') return node
  const merged = mergeAllOf(node as Schema, components)
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(merged)) out[k] = closeSchema(v, components)
  if (out.properties !== undefined && !('additionalProperties' in out)) {
    out.additionalProperties = false
  }
  return out as T
}

function mergeAllOf(node: Schema, components: Record<string, Schema>): Schema {
  if (!node.allOf) return node
  const parts = node.allOf.map((b) => (b.$ref ? components[refName(b.$ref)]! : b))
  if (parts.some((p) => p.allOf || p.anyOf || p.oneOf || p.additionalProperties !== undefined)) {
    return node
  }
  const { allOf: _, ...rest } = node
  const properties: Record<string, Schema> = {}
  const required = new Set<string>()
  for (const p of parts) {
    Object.assign(properties, p.properties)
    for (const r of (p.required as string[] | undefined) ?? []) required.add(r)
  }
  return { ...rest, type: 'object', properties, required: [...required] }
}

const refName = (ref: string) => ref.split('/').pop()!

/**
 * Every property a schema declares, as `Owner.a.b` where Owner is the nearest named component (so a
 * schema used by several responses is listed once). Loose values (`additionalProperties`) end the walk.
 */
export function declaredProperties(
  schema: Schema,
  components: Record<string, Schema>,
  owner = '(inline)',
  out = new Set<string>(),
  visiting = new Set<string>(),
): Set<string> {
  if (schema.$ref) {
    const name = refName(schema.$ref)
    if (visiting.has(name)) return out
    visiting.add(name)
    declaredProperties(components[name]!, components, name, out, visiting)
    visiting.delete(name)
    return out
  }
  for (const branch of [...(schema.allOf ?? []), ...(schema.anyOf ?? []), ...(schema.oneOf ?? [])])
    declaredProperties(branch, components, owner, out, visiting)
  if (schema.items) declaredProperties(schema.items, components, owner, out, visiting)
  for (const [k, v] of Object.entries(schema.properties ?? {})) {
    out.add(`${owner}.${k}`)
    declaredProperties(v, components, `${owner}.${k}`, out, visiting)
  }
  return out
}

/**
 * The declared properties a value actually carries, named as declaredProperties names them. Of a
 * union's branches only those the value matches (`matches`) are followed.
 */
export function sentProperties(
  value: unknown,
  schema: Schema,
  components: Record<string, Schema>,
  matches: (schema: Schema, value: unknown) => boolean,
  owner = '(inline)',
  out = new Set<string>(),
): Set<string> {
  if (schema.$ref) {
    const name = refName(schema.$ref)
    return sentProperties(value, components[name]!, components, matches, name, out)
  }
  for (const branch of schema.allOf ?? [])
    sentProperties(value, branch, components, matches, owner, out)
  for (const branch of [...(schema.anyOf ?? []), ...(schema.oneOf ?? [])]) {
    if (matches(branch, value)) sentProperties(value, branch, components, matches, owner, out)
  }
  if (Array.isArray(value) && schema.items) {
    for (const item of value) sentProperties(item, schema.items, components, matches, owner, out)
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && schema.properties) {
    for (const [k, v] of Object.entries(value)) {
      const declared = schema.properties[k]
      if (!declared) continue
      out.add(`${owner}.${k}`)
      sentProperties(v, declared, components, matches, `${owner}.${k}`, out)
    }
  }
  return out
}
