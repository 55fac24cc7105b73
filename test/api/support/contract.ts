// Checks answers, and the requests the API accepted, against the generated OpenAPI document (ajv, 2020-12).
import type { ValidateFunction } from 'ajv/dist/2020.js'
import { declaredProperties, type Schema, sentProperties } from './closed-schema.ts'
import { type CompiledDocument, compileDocument, type Doc } from './compiled-document.ts'
import type { Sent } from './harness.ts'

export type { Doc } from './compiled-document.ts'

type RequestBody = { content: Record<string, { schema: Schema }> }

// Served beside the document, not described by it.
const UNDESCRIBED = new Set(['/openapi.json', '/docs'])
const PROBLEM = 'application/problem+json'
// Headers a client acts on: one the answer carries must be declared for its status, or a client
// generated from the document never reads it.
const SIGNIFICANT_HEADERS = ['retry-after', 'www-authenticate', 'allow', 'location', 'x-request-id']

// Each failure at its path, an undeclared property named: "/items/0 has undeclared property total".
const explain = (errors: ValidateFunction['errors']) =>
  (errors ?? [])
    .map((e) =>
      e.keyword === 'additionalProperties'
        ? `${e.instancePath || '/'} has undeclared property ${e.params.additionalProperty}`
        : `${e.instancePath || '/'} ${e.message}`,
    )
    .join('; ')

/**
 * A contract records what its checks covered and sent; `compiled` (of this very `doc`) may be one
 * other contracts of the document share.
 */
export function createContract(doc: Doc, compiled: CompiledDocument = compileDocument(doc)) {
  if (compiled.doc !== doc) throw new Error('a contract needs the compilation of its own document')
  const { validator, operation } = compiled
  const covered = new Set<string>()
  const sent = new Set<string>()

  function validate(where: string, schema: Schema, body: unknown) {
    const v = validator(schema)
    if (!v(body)) {
      throw new Error(
        `${where} body does not match its schema: ${explain(v.errors)}\n${JSON.stringify(body)}`,
      )
    }
    for (const p of sentProperties(body, schema, doc.components.schemas, (s, b) => validator(s)(b)))
      sent.add(p)
  }

  /** A problem restates its answer's status and the request id its X-Request-Id header carries. */
  function problemAgrees(where: string, r: Sent) {
    const p = r.body as { status?: number; requestId?: string }
    const id = r.headers.get('x-request-id')
    if (p.status !== r.status) throw new Error(`${where}: the problem says status ${p.status}`)
    if (p.requestId !== id) throw new Error(`${where}: requestId ${p.requestId}, header ${id}`)
  }

  /**
   * Asserts the response is one the document allows: a documented status of the operation, a
   * documented content type, a body of its (closed) schema, documented headers of their type. A
   * HEAD is checked against its own operation, and carries no body. A request no operation
   * describes may only be refused, with a problem.
   */
  function check(method: string, url: string, r: Sent): Sent {
    const path = url.split('?')[0]!
    const head = method.toUpperCase() === 'HEAD'
    const found = operation(method, path)
    const type = (r.headers.get('content-type') ?? '').split(';')[0]!.trim()
    if (!found) {
      if (UNDESCRIBED.has(path) && (method === 'GET' || head)) return r
      if (r.status < 400)
        throw new Error(`${method} ${path} is not documented, yet answered ${r.status}`)
      if (type !== PROBLEM) throw new Error(`${method} ${path} ${r.status}: ${type}, not a problem`)
      if (!head) {
        validate(`${method} ${path} ${r.status}`, doc.components.schemas.Problem!, r.body)
        problemAgrees(`${method} ${path} ${r.status}`, r)
      }
      return r
    }
    const where = `${method.toUpperCase()} ${found.template} ${r.status}`
    const response = found.op.responses[String(r.status)]
    if (!response) throw new Error(`${where}: the status is not documented`)
    const media = response.content?.[type]
    if (response.content && !media) throw new Error(`${where}: undocumented content type ${type}`)
    for (const [name, declared] of Object.entries(response.headers ?? {})) {
      const h = declared.$ref ? doc.components.headers?.[declared.$ref.split('/').pop()!] : declared
      if (!h) throw new Error(`${where}: header ${name} refers to ${declared.$ref}, not declared`)
      const value = r.headers.get(name)
      if (value === null) {
        if (h.required) throw new Error(`${where}: required header ${name} is missing`)
      } else if (h.schema?.type === 'integer') {
        if (!/^\d+$/.test(value))
          throw new Error(`${where}: header ${name} is not an integer: ${value}`)
      } else if (h.schema && !validator(h.schema)(value)) {
        throw new Error(`${where}: header ${name} does not match its schema: ${value}`)
      }
    }
    for (const name of SIGNIFICANT_HEADERS) {
      const declared = Object.keys(response.headers ?? {}).some((h) => h.toLowerCase() === name)
      if (!declared && r.headers.has(name))
        throw new Error(`${where}: header ${name} is not declared`)
    }
    if (head) {
      if (r.body !== '') throw new Error(`${where}: a HEAD answer carries a body`)
    } else if (media) {
      validate(where, media.schema, r.body)
      if (type === PROBLEM) problemAgrees(where, r)
    }
    covered.add(where)
    return r
  }

  /** Why the document refuses this request body (read closed), or null when it accepts it. */
  function requestErrors(method: string, url: string, body: unknown): string | null {
    const found = operation(method, url.split('?')[0]!)
    const media = (found?.op.requestBody as RequestBody | undefined)?.content['application/json']
    if (!found || !media) return null
    const v = validator(media.schema)
    return v(body) ? null : `${method.toUpperCase()} ${found.template}: ${explain(v.errors)}`
  }

  /** Why the document refuses this query (a name it does not list, a value off its schema), or null. */
  function queryErrors(method: string, url: string): string | null {
    const [path, search = ''] = url.split('?') as [string, string?]
    const found = operation(method, path)
    // Outside /v1 a route filters nothing and ignores any parameter (a probe's cache-buster): README.
    if (!found?.template.startsWith('/v1/')) return null
    const params = new URLSearchParams(search)
    for (const name of new Set(params.keys())) {
      const declared = found.op.parameters?.find((p) => p.in === 'query' && p.name === name)
      const where = `${method.toUpperCase()} ${found.template} ?${name}`
      if (!declared?.schema) return `${where} is not a documented parameter`
      const values = params.getAll(name)
      const v = validator(declared.schema)
      // An array parameter is repeated, one value each (form style, exploded: OpenAPI's default).
      if ((declared.schema as { type?: unknown }).type === 'array') {
        if (!v(values)) return `${where}=${params.getAll(name).join('&')}: ${explain(v.errors)}`
        continue
      }
      if (values.length > 1) return `${where} is given ${values.length} times`
      // A query value is text: a number the schema asks for is read as one, as a client writes it.
      const text = values[0]!
      const value = /^-?\d+(\.\d+)?$/.test(text) && !v(text) ? Number(text) : text
      if (!v(value)) return `${where}=${text}: ${explain(v.errors)}`
    }
    return null
  }

  /**
   * A request the server accepted (2xx) must be one the document accepts, its body (read closed)
   * and its query: else a client that validates against the document could not send what the
   * server takes.
   */
  function checkRequest(method: string, url: string, body: unknown, r: Sent) {
    if (r.status >= 300) return
    const refused =
      queryErrors(method, url) ?? (body === undefined ? null : requestErrors(method, url, body))
    if (refused) {
      throw new Error(`${refused} (accepted with ${r.status})\n${JSON.stringify(body)}`)
    }
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

  /** Every property the responses' schemas declare (see closed-schema.ts for the naming). */
  function declared(): string[] {
    const out = new Set<string>()
    for (const ops of Object.values(doc.paths)) {
      for (const op of Object.values(ops)) {
        for (const res of Object.values(op.responses)) {
          for (const media of Object.values(res.content ?? {}))
            declaredProperties(media.schema, doc.components.schemas, '(inline)', out)
        }
      }
    }
    return [...out].sort()
  }

  return {
    check,
    checkRequest,
    requestErrors,
    queryErrors,
    covered,
    documented,
    declared,
    sent,
    operation,
  }
}

export type Contract = ReturnType<typeof createContract>
