// Checks responses against the generated OpenAPI document (ajv, JSON Schema 2020-12) and records coverage.
import Ajv2020 from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import type { Sent } from './harness.ts'

type Doc = {
  paths: Record<string, Record<string, { responses: Record<string, ResponseObject> }>>
  components: Record<string, unknown>
}
type ResponseObject = { content?: Record<string, { schema: object }> }

export function createContract(doc: Doc) {
  const ajv = new Ajv2020({ strict: false, allErrors: true })
  addFormats(ajv)
  const covered = new Set<string>()
  const templates = Object.keys(doc.paths).map((t) => ({
    template: t,
    re: new RegExp(`^${t.replace(/\{[^}]+\}/g, '[^/]+')}$`),
  }))

  /** Asserts the response is documented for this route and status and matches its schema. */
  function check(method: string, url: string, r: Sent): Sent {
    const path = url.split('?')[0]!
    const found = templates.find(
      (t) => t.re.test(path) && doc.paths[t.template]?.[method.toLowerCase()],
    )
    if (!found) throw new Error(`${method} ${path} is not documented`)
    const op = doc.paths[found.template]![method.toLowerCase()]!
    const response = op.responses[String(r.status)]
    if (!response) {
      throw new Error(`${method} ${found.template} answered ${r.status}, which is not documented`)
    }
    const type = (r.headers.get('content-type') ?? '').split(';')[0]!.trim()
    const media = response.content?.[type]
    if (!media)
      throw new Error(`${method} ${found.template} ${r.status}: undocumented content type ${type}`)
    // The document's components travel with each schema so its #/components refs resolve.
    const validate = ajv.compile({ ...media.schema, components: doc.components })
    if (!validate(r.body)) {
      throw new Error(
        `${method} ${found.template} ${r.status} body does not match its schema: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(r.body)}`,
      )
    }
    covered.add(`${method.toUpperCase()} ${found.template} ${r.status}`)
    return r
  }

  function documented(): string[] {
    const all: string[] = []
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        for (const status of Object.keys(op.responses))
          all.push(`${method.toUpperCase()} ${path} ${status}`)
      }
    }
    return all.sort()
  }

  return { check, covered, documented }
}
