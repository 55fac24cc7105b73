// HEAD beside each GET of the generated document: Hono serves it as that GET without the body.
import type { OpenAPIHono } from '@hono/zod-openapi'

export type OpenApiDocument = ReturnType<OpenAPIHono['getOpenAPI31Document']>
type PathItem = NonNullable<OpenApiDocument['paths']>[string]
type Operation = NonNullable<PathItem['get']>

/**
 * The document with a HEAD operation on every path whose GET it declares: the GET's parameters,
 * security and statuses, each answer's headers kept and its content dropped (a HEAD has no body).
 * Its operationId is the GET's with `Head` appended, so generated clients get stable names.
 */
export function withHeadOperations(doc: OpenApiDocument): OpenApiDocument {
  if (!doc.paths) return doc
  const paths: Record<string, PathItem> = {}
  for (const [path, item] of Object.entries(doc.paths)) {
    paths[path] = item.get && !item.head ? { ...item, head: headOf(item.get) } : item
  }
  return { ...doc, paths }
}

function headOf(get: Operation): Operation {
  const responses: NonNullable<Operation['responses']> = {}
  for (const [status, response] of Object.entries(get.responses ?? {})) {
    const { content: _body, ...rest } = response as { content?: unknown }
    responses[status] = rest
  }
  return {
    ...get,
    ...(get.operationId ? { operationId: `${get.operationId}Head` } : {}),
    ...(get.summary ? { summary: `${get.summary} (headers only)` } : {}),
    responses,
  }
}
