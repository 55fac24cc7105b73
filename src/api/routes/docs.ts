// /openapi.json (OpenAPI 3.1, generated from the route schemas) and /docs (Scalar API reference).
import type { OpenAPIHono } from '@hono/zod-openapi'
import { Scalar } from '@scalar/hono-api-reference'
import type { ApiDeps, AppEnv } from '../context.ts'

export const OPENAPI_PATH = '/openapi.json'

/** Registers on the root app, after every route, so the document sees them all. */
export function mountDocs(app: OpenAPIHono<AppEnv>, deps: ApiDeps) {
  app.openAPIRegistry.registerComponent('securitySchemes', 'Bearer', {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description:
      'Scopes in the space-separated `scope` claim: outbox:read, outbox:write. `exp` is required; an optional `tenant` claim confines the caller to one tenant.',
  })
  app.doc31(OPENAPI_PATH, {
    openapi: '3.1.0',
    info: {
      title: 'outbox-mailer',
      version: deps.version,
      description:
        'Inspect and steer the e-mail outbox (mailer.email_outbox). Errors are application/problem+json. With several databases, /v1 routes take ?db=NAME.',
    },
    tags: [
      { name: 'outbox', description: 'Rows, enqueue, cancel, retry, stats' },
      // With METRICS_PORT, /metrics is not on this port: the document says only what this port serves.
      {
        name: 'operations',
        description: deps.metricsApart
          ? 'Health, readiness (no token)'
          : 'Health, readiness, metrics (no token)',
      },
    ],
  })
  app.get('/docs', Scalar({ url: OPENAPI_PATH, pageTitle: 'outbox-mailer API' }))
}
