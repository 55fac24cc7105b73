// X-Request-Id: which incoming ids are echoed, and the header's declaration on every request and answer of the document.
import type { OpenApiDocument } from './head-operations.ts'

export const REQUEST_ID_HEADER = 'X-Request-Id'

// An incoming id is echoed only if it is short and plain, so it is safe in logs and headers; a
// generated one (a UUID) is of the same form.
export const ACCEPTABLE_ID = /^[A-Za-z0-9._:-]{1,128}$/

const COMPONENT = 'RequestId'
// The keys of a path item that are operations (the others: summary, parameters, servers, …).
const METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'])

// The id a request may send: inline, as a client generator reads a header parameter.
const SENT_ID = {
  name: REQUEST_ID_HEADER,
  in: 'header',
  required: false,
  description:
    'A correlation id of your own, echoed on the answer when it is 1-128 of A-Z a-z 0-9 . _ : - (otherwise a generated UUID answers)',
  schema: { type: 'string', example: 'order-7-attempt-1' },
}

/**
 * The document with X-Request-Id on every response of every operation (one component, referenced):
 * requestContext sets it on every answer, a 2xx or a problem, before any route runs; and as each
 * operation's optional header parameter, the id it echoes.
 */
export function withRequestIdHeader(doc: OpenApiDocument): OpenApiDocument {
  if (!doc.paths) return doc
  const ref = { $ref: `#/components/headers/${COMPONENT}` }
  const paths: NonNullable<OpenApiDocument['paths']> = {}
  for (const [path, item] of Object.entries(doc.paths)) {
    const next: Record<string, unknown> = { ...item }
    for (const [key, op] of Object.entries(item)) {
      if (!METHODS.has(key)) continue
      const operation = op as { responses?: Record<string, unknown>; parameters?: unknown[] }
      const responses: Record<string, unknown> = {}
      for (const [status, res] of Object.entries(operation.responses ?? {})) {
        const r = res as { headers?: Record<string, unknown> }
        responses[status] = { ...r, headers: { ...r.headers, [REQUEST_ID_HEADER]: ref } }
      }
      const parameters = [...(operation.parameters ?? []), SENT_ID]
      next[key] = { ...operation, parameters, responses }
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
