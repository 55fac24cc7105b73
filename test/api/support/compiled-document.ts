// An OpenAPI document's schemas compiled closed (ajv, 2020-12), each once on first use, and its operations found by path: the costly part of a contract, shared by every contract of the document.
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import { closeSchema, type Schema } from './closed-schema.ts'

type Header = { schema?: Schema; required?: boolean; $ref?: string }
type ResponseObject = {
  content?: Record<string, { schema: Schema }>
  headers?: Record<string, Header>
}
type Operation = {
  responses: Record<string, ResponseObject>
  security?: unknown[]
  parameters?: { name: string; in: string; schema?: Schema }[]
  requestBody?: unknown
}
export type Doc = {
  paths: Record<string, Record<string, Operation>>
  components: { schemas: Record<string, Schema>; headers?: Record<string, Header> } & Record<
    string,
    unknown
  >
}

/**
 * Holds no record of what was checked (a contract does), so contracts of one document share it:
 * compiling costs seconds of a loaded machine, per document. Its validators are keyed by the
 * schema objects of `doc`: only a contract of this very object may use it.
 */
export function compileDocument(doc: Doc) {
  const ajv = new Ajv2020({ strict: false, allErrors: true })
  addFormats(ajv)
  const components = closeSchema(doc.components, doc.components.schemas)
  const compiled = new Map<Schema, ValidateFunction>()
  // Each schema compiles with the document's (closed) components, so its #/components refs resolve.
  const validator = (schema: Schema) => {
    let v = compiled.get(schema)
    if (!v) {
      v = ajv.compile({ ...closeSchema(schema, doc.components.schemas), components })
      compiled.set(schema, v)
    }
    return v
  }
  const templates = Object.keys(doc.paths).map((t) => ({
    template: t,
    re: new RegExp(`^${t.replace(/\{[^}]+\}/g, '[^/]+')}$`),
  }))

  function operation(method: string, path: string) {
    const m = method.toLowerCase()
    const found = templates.find((t) => t.re.test(path) && doc.paths[t.template]?.[m])
    return found ? { template: found.template, op: doc.paths[found.template]![m]! } : null
  }

  return { doc, validator, operation }
}

export type CompiledDocument = ReturnType<typeof compileDocument>
