// X-Request-Id: which incoming ids are echoed, and the header's declaration on every answer of the document.
import type { OpenApiDocument } from './head-operations.ts'

export const REQUEST_ID_HEADER = 'X-Request-Id'

// An incoming id is echoed only if it is short and plain, so it is safe in logs and headers; a
// generated one (a UUID) is of the same form.
export const ACCEPTABLE_ID = /^[A-Za-z0-9._:-]{1,128}$/

const COMPONENT = 'RequestId'
// The keys of a path item that are operations (the others: summary, parameters, servers, …).
const METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'])

/**
 * The document with X-Request-Id on every response of every operation (one component, referenced):
 * requestContext sets it on every answer, a 2xx or a problem, before any route runs.
 */
export function withRequestIdHeader(doc: OpenApiDocument): OpenApiDocument {
  if (!doc.paths) return doc
  const ref = { $ref: `#/components/headers/${COMPONENT}` }
  const paths: NonNullable<OpenApiDocument['paths']> = {}
  for (const [path, item] of Object.entries(doc.paths)) {
    const next: Record<string, unknown> = { ...item }
    for (const [key, op] of Object.entries(item)) {
      if (!METHODS.has(key)) continue
      const operation = op as { responses?: Record<string, unknown> }
      const responses: Record<string, unknown> = {}
      for (const [status, res] of Object.entries(operation.responses ?? {})) {
        const r = res as { headers?: Record<string, unknown> }
        responses[status] = { ...r, headers: { ...r.headers, [REQUEST_ID_HEADER]: ref } }
      }
      next[key] = { ...operation, responses }
    }
    paths[path] = next
  }
  const header = {
    description:
      'The correlation id of this answer: the X-Request-Id the request sent when it is short and plain, else a generated UUID. A problem repeats it as requestId; the log lines of the request carry it.',
    required: true,
    schema: { type: 'string' as const, pattern: ACCEPTABLE_ID.source },
  }
  const components = doc.components ?? {}
  return {
    ...doc,
    paths,
    components: { ...components, headers: { ...components.headers, [COMPONENT]: header } },
  }
}
