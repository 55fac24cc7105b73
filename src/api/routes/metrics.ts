// /metrics: Prometheus text exposition (no token: scraped over Fly's private network).
import { createRoute, OpenAPIHono, z } from '@hono/zod-openapi'
import type { ApiDeps, AppEnv } from '../context.ts'
import { validationHook } from '../validation-hook.ts'

export function metricsRoutes(deps: ApiDeps) {
  const route = createRoute({
    method: 'get',
    path: '/metrics',
    operationId: 'metrics',
    tags: ['operations'],
    summary: 'Prometheus metrics',
    responses: {
      200: {
        description: 'Prometheus text format 0.0.4',
        content: { 'text/plain': { schema: z.string() } },
      },
    },
  })
  return new OpenAPIHono<AppEnv>({ defaultHook: validationHook }).openapi(route, async (c) =>
    c.text(await deps.metrics.render(), 200, { 'content-type': deps.metrics.contentType }),
  )
}
