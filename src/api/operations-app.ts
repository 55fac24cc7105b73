// The operations surface as a Hono app: health, readiness and (unless on its own port) metrics, with what every listener's app shares.
import { OpenAPIHono } from '@hono/zod-openapi'
import { AppError } from '../errors.ts'
import type { ApiDeps, AppEnv } from './context.ts'
import { headLength } from './head-length.ts'
import { notFoundHandler, onError } from './problem.ts'
import { requestContext } from './request-context.ts'
import { healthRoutes } from './routes/health.ts'
import { metricsRoutes } from './routes/metrics.ts'
import { servedMethods } from './served-methods.ts'
import { validationHook } from './validation-hook.ts'

/** What a platform probes or scrapes: all a worker-only process serves, and the first routes of the API's app. */
export function createOperationsApp(deps: ApiDeps): OpenAPIHono<AppEnv> {
  if (deps.databases.length === 0) {
    throw new AppError('config_invalid', 'the API needs at least one database')
  }
  const app = baseApp(deps)
  app.route('/', healthRoutes(deps))
  if (!deps.metricsApart) app.route('/', metricsRoutes(deps))
  // A worker's 404 for an API path says why: a request routed to it by mistake (Fly's proxy over a
  // split's groups both) read as a route gone. So does /metrics asked on PORT with METRICS_PORT set
  // (a scraper or an operator pointed at the public port), without naming the private port's number.
  const worker = deps.surface === 'operations'
  if (worker || deps.metricsApart) {
    const elsewhere = (path: string) =>
      deps.metricsApart && path === '/metrics'
        ? METRICS_APART
        : worker && isApiPath(path)
          ? NO_API
          : null
    app.notFound(notFoundHandler(servedMethods(app), elsewhere))
  }
  return app
}

const METRICS_APART =
  '/metrics is served on a port of its own (METRICS_PORT), not on this one (PORT)'

const NO_API =
  'this process runs `serve --role worker`, which serves no API: send /v1, /openapi.json and /docs to a `serve --role api` (or `all`) process'
const isApiPath = (path: string) =>
  path === '/v1' || path.startsWith('/v1/') || path === '/openapi.json' || path === '/docs'

/** /metrics alone, for its own listener (METRICS_PORT): a port the platform keeps off the internet. */
export function createMetricsApp(deps: ApiDeps): OpenAPIHono<AppEnv> {
  const app = baseApp(deps).route('/', metricsRoutes(deps))
  // A check or a client pointed at this port by mistake is told where the rest is served; on a
  // worker, an API path is served on no port of this process, and is told so.
  const worker = deps.surface === 'operations'
  const rest = worker ? 'health and readiness are' : 'health, readiness and the API are'
  const alone = 'this listener (METRICS_PORT) serves /metrics alone'
  const elsewhere = `${alone}: ${rest} on PORT`
  app.notFound(
    notFoundHandler(servedMethods(app), (path) =>
      isApiPath(path)
        ? worker
          ? `${alone}; ${NO_API}`
          : elsewhere
        : path === '/healthz' || path === '/readyz'
          ? elsewhere
          : null,
    ),
  )
  return app
}

/** What every listener's app shares: problem+json errors, 404s and 405s, request ids and access logs, HEAD lengths. */
function baseApp(deps: ApiDeps): OpenAPIHono<AppEnv> {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook })
  app.onError(onError)
  app.notFound(notFoundHandler(servedMethods(app)))
  app.use('*', requestContext(deps.log), headLength)
  return app
}
