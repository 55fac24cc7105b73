// createApp(deps): the HTTP surface as a Hono app; main.ts serves app.fetch, tests call app.request.
import { OpenAPIHono } from '@hono/zod-openapi'
import { bodyLimit } from 'hono/body-limit'
import { systemClock } from '../clock.ts'
import { AppError } from '../errors.ts'
import { authenticate, createVerifier } from './auth.ts'
import { type ApiDeps, type AppEnv, BODY_LIMIT_BYTES } from './context.ts'
import { notFoundHandler, onError, validationHook } from './problem.ts'
import { rateLimit } from './rate-limit.ts'
import { requestContext } from './request-context.ts'
import { mountDocs } from './routes/docs.ts'
import { healthRoutes } from './routes/health.ts'
import { metricsRoutes } from './routes/metrics.ts'
import { outboxRoutes } from './routes/outbox.ts'
import { outboxActionRoutes } from './routes/outbox-actions.ts'
import { statsRoutes } from './routes/stats.ts'
import { servedMethods } from './served-methods.ts'

export type { ApiDatabase, ApiDeps } from './context.ts'

const DEFAULT_RATE_PER_MINUTE = 600

/**
 * Throws AppError('config_invalid') when no auth is configured and `dev` is false (unless only the
 * operations surface is served).
 */
export function createApp(deps: ApiDeps): OpenAPIHono<AppEnv> {
  if (deps.databases.length === 0) {
    throw new AppError('config_invalid', 'the API needs at least one database')
  }
  const app = baseApp(deps)
  app.route('/', healthRoutes(deps))
  if (!deps.metricsApart) app.route('/', metricsRoutes(deps))
  if (deps.surface === 'operations') return app

  const verify = createVerifier(deps.auth, deps.dev, deps.log, deps.clock ?? systemClock)
  if (verify === null) deps.log.warn('API auth is off (dev): every caller may read and write')
  app.use(
    '/v1/*',
    bodyLimit({
      maxSize: BODY_LIMIT_BYTES,
      onError: () => {
        throw new AppError('payload_too_large', `the body exceeds ${BODY_LIMIT_BYTES} bytes`)
      },
    }),
    authenticate(verify),
    rateLimit(deps.rateLimitPerMinute ?? DEFAULT_RATE_PER_MINUTE),
  )

  app.route('/', outboxActionRoutes(deps))
  app.route('/', outboxRoutes(deps))
  app.route('/', statsRoutes(deps))
  mountDocs(app, deps)
  return app
}

/** /metrics alone, for its own listener (METRICS_PORT): a port the platform keeps off the internet. */
export function createMetricsApp(deps: ApiDeps): OpenAPIHono<AppEnv> {
  return baseApp(deps).route('/', metricsRoutes(deps))
}

/** What every listener's app shares: problem+json errors, 404s and 405s, request ids and access logs. */
function baseApp(deps: ApiDeps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  app.onError(onError)
  app.notFound(notFoundHandler(servedMethods(app)))
  app.use('*', requestContext(deps.log))
  return app
}
